"""Who may call each route: one declaration per route, checked in one place.

Every route names an :class:`Access` in its signature, through one of the aliases in
:mod:`openpartner.api.deps` (``principal: LinksWrite``) or :data:`Public` for the few routes that
take no key. ``tests/test_access_policy.py`` walks the app's route table, fails for a route
without a declaration, and calls every route as every kind of principal, expecting exactly what
the declaration allows. The checks, in order:

1. a key is required (401) unless the route is public;
2. a publishable key may call only routes that allow it (403 ``publishable_key_forbidden``), and
   only from one of its program's allowed origins (403 ``origin_not_allowed``);
3. a partner's key may call only routes that allow partners (403 ``partner_key_forbidden``);
4. the key must hold the route's scope (403 ``missing_scope``), or be an admin key; a route
   without a scope is for admin keys only (403 ``admin_required``).

What a principal then sees of the data (its program, its partner) is the scoping function's
work: :func:`openpartner.accounts.scopes.get_readable` and ``Principal.filters``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from openpartner.accounts.origins import check_origin
from openpartner.accounts.scopes import SCOPES, Principal
from openpartner.core.errors import Forbidden


@dataclass(frozen=True)
class Access:
    scope: str | None
    """The scope a key needs; None: admin keys only."""
    partner: bool = False
    """Partner keys holding ``scope`` may call it (and see only their own rows)."""
    publishable: bool = False
    """Publishable keys may call it, from their program's allowed origins."""
    public: str | None = None
    """No key at all: why the route is open (its own check, e.g. Stripe's signature)."""

    def __post_init__(self) -> None:
        if self.scope is not None and self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}")

    def describe(self) -> str:
        if self.public is not None:
            return f"public ({self.public})"
        who = [self.scope or "admin keys only"]
        if self.partner:
            who.append("partner keys")
        if self.publishable:
            who.append("publishable keys")
        return ", ".join(who)


def check(access: Access, principal: Principal, origin: str | None) -> None:
    """Raise the error that ``access`` gives ``principal``; return if it may call the route."""
    if principal.is_publishable:
        if not access.publishable:
            raise Forbidden(
                "Publishable keys may only record clicks and identify visitors; "
                "use a secret key from your server.",
                code="publishable_key_forbidden",
            )
        check_origin(principal, origin)
    if principal.partner_id is not None and not access.partner:
        raise Forbidden("A partner's key cannot do this.", code="partner_key_forbidden")
    if access.scope is None:
        principal.require_admin()
    else:
        principal.require(access.scope)


def policy_of(dependency: object) -> Access | None:
    """The :class:`Access` a dependency declares (for the route-table test and the docs)."""
    found = getattr(dependency, "access", None)
    return found if isinstance(found, Access) else None


def route_access(route: APIRoute) -> list[Access]:
    """Every :class:`Access` a route declares, through its dependencies at any depth."""
    found: list[Access] = []

    def walk(dependant: Dependant) -> None:
        access = policy_of(dependant.call)
        if access is not None:
            found.append(access)
        for sub in dependant.dependencies:
            walk(sub)

    walk(route.dependant)
    return found


def api_routes(routers: Iterable[APIRouter]) -> Iterator[APIRoute]:
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                yield route


def markdown_table(routes: Iterable[APIRoute]) -> str:
    """Who may call each route, as ``docs/security.md`` shows it (a test keeps the two equal)."""
    lines = [
        "| Route | Scope | Partner keys | Publishable keys |",
        "|---|---|---|---|",
    ]
    rows = []
    for route in routes:
        (access,) = route_access(route)
        for method in sorted(route.methods or ()):
            scope = f"`{access.scope}`" if access.scope else "admin keys only"
            if access.public is not None:
                scope = f"none: {access.public}"
            partner = "own rows" if access.partner else "no"
            publishable = "from allowed origins" if access.publishable else "no"
            rows.append(f"| `{method} {route.path}` | {scope} | {partner} | {publishable} |")
    return "\n".join(lines + rows)
