"""Scopes, the request principal, and the one scoping function for what a principal may read.

A scoped key gets exactly its scopes, never admin. Partner keys hold only :data:`PARTNER_SCOPES`
and read only the partner's own rows; publishable keys hold only ``visitors:write``. Every read
of a row a partner could ask for goes through :meth:`Principal.filters` (lists) or
:func:`get_readable` (one row by id), so "partner A reads partner B's data" cannot be written
route by route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.core.errors import Forbidden, NotFound

SCOPES: dict[str, str] = {
    "programs:read": "Read programs and their settings.",
    "programs:write": "Create, change and archive programs; replay attribution.",
    "partners:read": "Read partners and promotion codes (a partner key: its own record).",
    "partners:write": "Create and change partners (including revoking them), promotion codes.",
    "links:read": "Read tracking links (a partner key: its own).",
    "links:write": "Create, change and archive links (a partner key: its own, within the "
    "program's allowed domains).",
    "visitors:write": "Record a click and identify a visitor: all a publishable key can do.",
    "events:read": "Read events and deals.",
    "events:write": "Report events (sales, refunds, leads), batches, deals and touchpoints; "
    "includes visitors:write.",
    "attribution:read": "Explain attribution, program analytics (a partner key: its own "
    "analytics only).",
    "commissions:read": "Read commission rules, commissions, adjustments, balances (a partner "
    "key: its own).",
    "commissions:write": "Change commission rules; approve, reverse, hold and release.",
    "payouts:read": "Read payouts (a partner key: its own) and the mass-pay export.",
    "payouts:write": "Run payouts, mark them paid or cancelled, onboard partners to Stripe.",
    "keys:read": "List API keys within the key's own binding.",
    "keys:write": "Create and revoke API keys within the key's own binding and scopes.",
}
"""Every scope and what it allows (docs/security.md shows this table)."""

PUBLISHABLE_SCOPES = frozenset({"visitors:write"})
"""A publishable key lives in web pages anyone can read: clicks and identify, nothing else."""
PARTNER_SCOPES = frozenset(
    {
        "partners:read",
        "links:read",
        "links:write",
        "attribution:read",
        "commissions:read",
        "payouts:read",
        "keys:read",
        "keys:write",
    }
)
"""What a partner's own key may hold: reads of its own data, its own links and keys. Never
events, identify, program or partner writes."""
IMPLIED = {"events:write": frozenset({"visitors:write"})}
"""A key that may report money events may report the visits that lead to them."""


@dataclass(frozen=True)
class Principal:
    key_id: str
    kind: str
    """``secret`` or ``publishable``."""
    is_admin: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    program_id: str | None = None
    partner_id: str | None = None
    origins: frozenset[str] = field(default_factory=frozenset)
    """A publishable key's program's allowed origins, read with the key."""

    @property
    def is_publishable(self) -> bool:
        return self.kind == "publishable"

    def has(self, scope: str) -> bool:
        if self.is_admin:
            return True
        return scope in self.scopes or any(scope in IMPLIED.get(s, ()) for s in self.scopes)

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise Forbidden(f"This API key lacks the {scope!r} scope.", code="missing_scope")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This operation needs an admin key.", code="admin_required")

    def check_program(self, program_id: str) -> None:
        """Keys bound to a program see nothing else; we answer 404 so ids do not leak."""
        if self.program_id is not None and self.program_id != program_id:
            raise NotFound("No such resource.")

    def check_partner(self, partner_id: str) -> None:
        if self.partner_id is not None and self.partner_id != partner_id:
            raise NotFound("No such resource.")

    def filters(self, model: Any) -> list[Any]:
        """WHERE clauses that limit a query on ``model`` to what this principal may read.

        A partner key reads a table only through a ``partner_id`` column (or its own row of
        ``partners``); tables without one (events, deals, programs) show it nothing."""
        clauses: list[Any] = []
        if self.program_id is not None:
            if hasattr(model, "program_id"):
                clauses.append(model.program_id == self.program_id)
            elif model.__tablename__ == "programs":
                clauses.append(model.id == self.program_id)
            else:
                clauses.append(sa.false())  # not known to belong to the program: show nothing
        if self.partner_id is not None:
            if model.__tablename__ == "partners":
                clauses.append(model.id == self.partner_id)
            elif hasattr(model, "partner_id"):
                clauses.append(model.partner_id == self.partner_id)
            else:
                clauses.append(sa.false())  # nothing partner-owned to show
        return clauses


M = TypeVar("M")


def get_readable(session: Session, principal: Principal, model: type[M], row_id: str) -> M:
    """The row of ``model`` with id ``row_id`` if ``principal`` may read it, else 404 (the same
    answer as for an id that does not exist, so ids of others' rows do not leak)."""
    table: Any = model
    row: M | None = session.scalar(
        sa.select(table).where(table.id == row_id, *principal.filters(table))
    )
    if row is None:
        raise NotFound(f"{model.__name__} {row_id} not found.")
    return row
