"""The access policy, from the app's own route table: every route by every kind of principal.

Each route must declare one :class:`~openpartner.api.access.Access` (a route without one fails
here), and must have a sample request below (a new route fails until it gets one). Every route
is then called as each kind of principal, and the answer must be what the declaration allows:
a denial is 401, 403 or 404 (404 where the caller may not know the row exists); an allowed call
is anything else below 500, and the admin's call must succeed outright, which keeps the samples
honest. Runs on SQLite and PostgreSQL like every test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.accounts.models import ApiKey
from openpartner.accounts.scopes import PARTNER_SCOPES
from openpartner.accounts.service import create_key
from openpartner.api.access import Access, markdown_table, route_access
from openpartner.api.app import route_table
from openpartner.commissions.review import transition
from openpartner.core.time import utc_now
from openpartner.deals.models import Deal
from openpartner.payouts.models import Payout
from openpartner.payouts.service import run_payouts
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import only_commission, percent, sale, set_rules

ORIGIN = "https://shop.acme.example"


@dataclass(frozen=True)
class Sample:
    body: dict[str, Any] | None = None
    program_rows: bool = False
    """The request names program A's rows: a key bound to another program must be refused."""
    partner_rows: bool = False
    """The request names partner A1's own rows: another partner's key must be refused."""
    admin_ok: frozenset[int] = field(default_factory=lambda: frozenset(range(200, 300)))


P = Sample(program_rows=True)
OWN = Sample(program_rows=True, partner_rows=True)

SAMPLES: dict[tuple[str, str], Sample | Callable[[dict[str, str]], Sample]] = {
    ("GET", "/health"): Sample(),
    ("GET", "/ready"): Sample(),
    ("POST", "/v1/programs"): Sample(
        {"name": "New", "currency": "USD", "default_destination_url": "https://new.example/"},
        program_rows=True,  # a program-bound key cannot create programs
    ),
    ("GET", "/v1/programs"): Sample(),
    ("GET", "/v1/programs/{program_id}"): P,
    ("PATCH", "/v1/programs/{program_id}"): Sample({"name": "Renamed"}, program_rows=True),
    ("POST", "/v1/programs/{program_id}/archive"): P,
    ("POST", "/v1/partners"): lambda ids: Sample(
        {"program_id": ids["program"], "name": "New", "email": "new@partner.example"},
        program_rows=True,
    ),
    ("GET", "/v1/partners"): Sample(),
    ("GET", "/v1/partners/{partner_id}"): OWN,
    ("PATCH", "/v1/partners/{partner_id}"): Sample({"name": "Renamed"}, True, True),
    ("POST", "/v1/links"): lambda ids: Sample({"partner_id": ids["partner"]}, True, True),
    ("GET", "/v1/links"): Sample(),
    ("GET", "/v1/links/{link_id}"): OWN,
    ("PATCH", "/v1/links/{link_id}"): Sample(
        {"destination_url": "https://acme.example/new"}, True, True
    ),
    ("POST", "/v1/links/{link_id}/archive"): OWN,
    ("POST", "/v1/api-keys"): lambda ids: Sample(
        {"name": "k", "scopes": [], "program_id": ids["program"]}, program_rows=True
    ),
    ("GET", "/v1/api-keys"): Sample(),
    ("POST", "/v1/api-keys/{key_id}/revoke"): OWN,
    ("POST", "/v1/identify"): lambda ids: Sample(
        {"program_id": ids["program"], "customer_id": "cus_new", "click_id": ids["click"]},
        program_rows=True,
    ),
    ("POST", "/v1/clicks"): lambda ids: Sample({"link_key": ids["link_key"]}, program_rows=True),
    ("POST", "/v1/events"): lambda ids: Sample(
        {"program_id": ids["program"], "type": "lead", "customer_id": "c", "external_id": "e"},
        program_rows=True,
    ),
    # Batches answer per item: a program the key cannot see rejects the item, not the batch.
    ("POST", "/v1/events/batch"): lambda ids: Sample(
        {"events": [{"program_id": ids["program"], "type": "lead", "external_id": "b1"}]}
    ),
    ("GET", "/v1/events"): Sample(),
    ("GET", "/v1/events/{event_id}"): P,
    ("POST", "/v1/touchpoints"): lambda ids: Sample(
        {"partner_id": ids["partner"], "type": "referral", "customer_id": "cus_t"},
        program_rows=True,
    ),
    ("POST", "/v1/deals"): lambda ids: Sample(
        {"program_id": ids["program"], "external_id": "deal-new"}, program_rows=True
    ),
    ("POST", "/v1/deals/{deal_id}/close"): lambda ids: Sample(
        {"amount": 1000, "currency": "USD"}, program_rows=True
    ),
    ("GET", "/v1/deals/{deal_id}"): P,
    ("POST", "/v1/promotion-codes"): lambda ids: Sample(
        {"partner_id": ids["partner"], "code": "SAVE10"}, program_rows=True
    ),
    ("GET", "/v1/promotion-codes"): Sample(),
    # Public, checked by Stripe's signature instead: unsigned is a 400 (503 when unconfigured).
    ("POST", "/v1/integrations/stripe/webhook"): Sample({}, admin_ok=frozenset({400, 503})),
    ("GET", "/v1/events/{event_id}/attribution"): P,
    ("GET", "/v1/deals/{closed_deal_id}/attribution"): P,
    ("POST", "/v1/programs/{program_id}/attribution/replay"): Sample(
        {"model": "linear"}, program_rows=True
    ),
    ("POST", "/v1/programs/{program_id}/commission-rules"): Sample(
        {"rules": [percent(1500)]}, program_rows=True
    ),
    ("GET", "/v1/programs/{program_id}/commission-rules"): P,
    ("GET", "/v1/commissions"): Sample(),
    ("GET", "/v1/commissions/{commission_id}"): OWN,
    ("GET", "/v1/adjustments"): Sample(),
    ("POST", "/v1/commissions/{commission_id}/approve"): P,
    ("POST", "/v1/commissions/{commission_id}/reverse"): Sample({"reason": "x"}, True),
    ("POST", "/v1/commissions/{commission_id}/hold"): Sample({"reason": "x"}, True),
    ("POST", "/v1/commissions/{held_commission_id}/release"): P,
    # Bulk review answers per id, like batches.
    ("POST", "/v1/commissions/approve"): lambda ids: Sample({"ids": [ids["commission"]]}),
    ("POST", "/v1/commissions/reverse"): lambda ids: Sample(
        {"ids": [ids["commission"]], "reason": "x"}
    ),
    ("POST", "/v1/payouts/run"): lambda ids: Sample(
        {"program_id": ids["program"]}, program_rows=True
    ),
    ("GET", "/v1/payouts"): Sample(),
    ("GET", "/v1/payouts/export.csv?program_id={program_id}"): P,
    ("POST", "/v1/payouts/mark-paid"): lambda ids: Sample({"ids": [ids["payout"]]}),
    ("GET", "/v1/payouts/{payout_id}"): OWN,
    ("POST", "/v1/payouts/{payout_id}/mark-paid"): Sample({}, program_rows=True),
    ("POST", "/v1/payouts/{payout_id}/cancel"): Sample({"reason": "x"}, program_rows=True),
    ("POST", "/v1/partners/{partner_id}/connect"): Sample(
        {"return_url": "https://acme.example/r", "refresh_url": "https://acme.example/f"},
        program_rows=True,
        admin_ok=frozenset({503}),  # Stripe is not configured in this test
    ),
    ("GET", "/v1/partners/{partner_id}/balance"): OWN,
    ("GET", "/v1/programs/{program_id}/liability"): P,
    ("GET", "/v1/programs/{program_id}/analytics/overview"): P,
    ("GET", "/v1/programs/{program_id}/analytics/leaderboard"): P,
    ("GET", "/v1/programs/{program_id}/analytics/models"): P,
    ("GET", "/v1/programs/{program_id}/analytics/touch-mix"): P,
    ("GET", "/v1/programs/{program_id}/analytics/recent-conversions"): P,
    ("GET", "/v1/programs/{program_id}/analytics/data-driven"): P,
    ("GET", "/v1/partners/{partner_id}/analytics"): OWN,
}
# Sample paths that name another row than the route's parameter would suggest.
ALIASES = {
    "/v1/deals/{closed_deal_id}/attribution": "/v1/deals/{deal_id}/attribution",
    "/v1/commissions/{held_commission_id}/release": "/v1/commissions/{commission_id}/release",
    "/v1/payouts/export.csv?program_id={program_id}": "/v1/payouts/export.csv",
}


def route_key(route: APIRoute) -> tuple[str, str]:
    (method,) = route.methods or {"GET"}
    return method, route.path


def sample_key(method: str, path: str) -> tuple[str, str]:
    return method, ALIASES.get(path, path)


ROUTE_SAMPLES = {sample_key(*k): k for k in SAMPLES}

PRINCIPALS = [
    "admin",  # first: its call must succeed, and the others then meet the state it left
    "none",
    "revoked",
    "bound_admin_of_another_program",
    "scoped_without_scope",
    "scoped_with_scope",
    "publishable_right_origin",
    "publishable_wrong_origin",
    "publishable_no_origin",
    "partner_owning",
    "partner_other",
]


def expectation(access: Access, sample: Sample, principal: str) -> bool:
    """True when ``principal`` may call a route declared ``access`` with ``sample``."""
    if access.public is not None:
        return True
    return {
        "admin": True,
        "none": False,
        "revoked": False,
        "bound_admin_of_another_program": not sample.program_rows,
        "scoped_without_scope": False,
        "scoped_with_scope": True,
        "publishable_right_origin": access.publishable,
        "publishable_wrong_origin": False,
        "publishable_no_origin": False,
        "partner_owning": access.partner,
        "partner_other": access.partner and not sample.partner_rows,
    }[principal]


def seed(session: Session, settings: Settings) -> dict[str, str]:
    """Program A with partners A1 (whose rows the samples name) and A2, program B, and a row
    of every kind the routes take by id."""
    program = make_program(session, allowed_origins=[ORIGIN], holding_days=0)
    other_program = make_program(session, name="Other program")
    mine = make_partner(session, program=program)
    theirs = make_partner(session, program=program)
    set_rules(session, program, percent(1000))
    link = make_link(session, partner=mine)
    click = make_click(session, link=link)
    pending = only_commission(session, sale(session, settings, mine, 10_000))
    held = only_commission(session, sale(session, settings, mine, 10_000))
    transition(session, held, "hold", "key_test", reason="checking")
    paid = only_commission(session, sale(session, settings, mine, 10_000))
    transition(session, paid, "approve", "key_test")
    run_payouts(session, program, "key_test", provider="manual")
    payout = session.scalars(sa.select(Payout).where(Payout.partner_id == mine.id)).one()
    now = utc_now()
    deal = Deal(id="deal_open", program_id=program.id, external_id="d-open", status="open")
    session.add(deal)
    closed = sale(session, settings, mine, 5_000)
    session.add(
        Deal(
            id="deal_closed",
            program_id=program.id,
            external_id="d-closed",
            status="closed",
            amount=5_000,
            currency="USD",
            closed_at=now,
            event_id=closed.id,
        )
    )
    partner_key = create_key(session, kind="secret", scopes=["links:read"], partner_id=mine.id)
    session.flush()
    return {
        "program": program.id,
        "other_program": other_program.id,
        "partner": mine.id,
        "other_partner": theirs.id,
        "link": link.id,
        "link_key": link.key,
        "click": click.id,
        "event": pending.event_id,
        "commission": pending.id,
        "held_commission": held.id,
        "payout": payout.id,
        "deal": deal.id,
        "closed_deal": "deal_closed",
        "key": partner_key.key.id,
    }


def principal_headers(session: Session, ids: dict[str, str], access: Access) -> dict[str, Any]:
    def token(**kw: Any) -> str:
        return create_key(session, **{"kind": "secret", "scopes": [], **kw}).token

    revoked = create_key(session, kind="secret", scopes=[], is_admin=True)
    revoked.key.revoked_at = utc_now()
    without = "links:read" if access.scope == "programs:read" else "programs:read"
    partner_scopes = sorted(PARTNER_SCOPES)
    publishable = token(kind="publishable", scopes=["visitors:write"], program_id=ids["program"])
    keys: dict[str, dict[str, str] | None] = {
        "admin": {"X-API-Key": ADMIN_TOKEN},
        "none": {},
        "revoked": {"X-API-Key": revoked.token},
        "bound_admin_of_another_program": {
            "X-API-Key": token(is_admin=True, program_id=ids["other_program"])
        },
        "scoped_without_scope": {"X-API-Key": token(scopes=[without])},
        "scoped_with_scope": (
            {"X-API-Key": token(scopes=[access.scope])} if access.scope is not None else None
        ),
        "publishable_right_origin": {"X-API-Key": publishable, "Origin": ORIGIN},
        "publishable_wrong_origin": {"X-API-Key": publishable, "Origin": "https://evil.example"},
        "publishable_no_origin": {"X-API-Key": publishable},
        "partner_owning": {
            "X-API-Key": token(scopes=partner_scopes, partner_id=ids["partner"]),
            "Origin": ORIGIN,
        },
        "partner_other": {
            "X-API-Key": token(scopes=partner_scopes, partner_id=ids["other_partner"])
        },
    }
    session.commit()
    return keys


def test_every_route_declares_exactly_one_access_policy(anon: TestClient) -> None:
    app = anon.app
    assert isinstance(app, FastAPI)
    undeclared = [route_key(r) for r in route_table(app) if len(route_access(r)) != 1]
    assert undeclared == []


def test_the_route_table_is_the_whole_api(anon: TestClient) -> None:
    """Nothing the OpenAPI document offers escapes the table the policy test walks, and every
    route there has a sample request."""
    app = anon.app
    assert isinstance(app, FastAPI)
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    walked = {route_key(r) for r in route_table(app)}
    assert documented == walked
    assert walked == set(ROUTE_SAMPLES)


@pytest.mark.parametrize("route", sorted(ROUTE_SAMPLES), ids=lambda k: " ".join(k))
def test_route_answers_each_principal_as_its_policy_declares(
    anon: TestClient, session: Session, settings: Settings, route: tuple[str, str]
) -> None:
    app = anon.app
    assert isinstance(app, FastAPI)
    (target,) = [r for r in route_table(app) if route_key(r) == route]
    (access,) = route_access(target)
    ids = seed(session, settings)
    method, template = ROUTE_SAMPLES[route]
    declared = SAMPLES[(method, template)]
    sample = declared(ids) if callable(declared) else declared
    url = template.format(**{f"{name}_id": value for name, value in ids.items()})
    headers = principal_headers(session, ids, access)
    wrong = []
    admin_status = None
    for principal in PRINCIPALS:
        principal_header = headers[principal]
        if principal_header is None:
            continue  # an admin-only route has no scope to hold
        response = anon.request(method, url, headers=principal_header, json=sample.body)
        allowed = expectation(access, sample, principal)
        status = response.status_code
        if principal == "admin":
            ok, admin_status = status in sample.admin_ok, status
        elif access.public is not None:
            ok = status == admin_status  # whoever calls, with whatever key: the same answer
        elif allowed:
            ok = status not in (401, 403, 404) and (status < 500 or status in sample.admin_ok)
        else:
            ok = status in (401, 403, 404)
        if not ok:
            wrong.append(f"{principal}: {status} {response.text[:200]}")
    assert wrong == [], f"{method} {url} ({access.describe()})"


def test_an_unknown_key_kind_of_row_grants_nothing_beyond_its_kind(
    anon: TestClient, session: Session
) -> None:
    """Rows written before the policy (or by hand) cannot widen a key: a publishable key that
    says ``events:write`` and a partner key that says ``programs:write`` get neither."""
    program = make_program(session, allowed_origins=[ORIGIN])
    partner = make_partner(session, program=program)
    old_pk = create_key(session, kind="publishable", scopes=[], program_id=program.id)
    old_partner = create_key(session, kind="secret", scopes=["links:read"], partner_id=partner.id)
    session.execute(
        sa.update(ApiKey).where(ApiKey.id == old_pk.key.id).values(scopes=["events:write"])
    )
    session.execute(
        sa.update(ApiKey)
        .where(ApiKey.id == old_partner.key.id)
        .values(scopes=["programs:write", "events:write"])
    )
    session.commit()
    sale = {"program_id": program.id, "type": "sale", "amount": 100, "currency": "USD"}
    forged = anon.post(
        "/v1/events", json=sale, headers={"X-API-Key": old_pk.token, "Origin": ORIGIN}
    )
    assert (forged.status_code, forged.json()["code"]) == (403, "publishable_key_forbidden")
    archived = anon.post(
        f"/v1/programs/{program.id}/archive", headers={"X-API-Key": old_partner.token}
    )
    assert (archived.status_code, archived.json()["code"]) == (403, "partner_key_forbidden")


def test_docs_show_who_may_call_each_route(anon: TestClient) -> None:
    app = anon.app
    assert isinstance(app, FastAPI)
    table = markdown_table(route_table(app))
    docs = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    assert table in docs, f"docs/security.md must show this table:\n{table}"
