"""The bulk lookups of the data-driven view agree with the per-customer ones of identity and
attribution on a tangled identity log (conflicts, visitors carrying clicks)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.analytics.identities import clicks_by_customer
from openpartner.analytics.journeys import TouchIndex
from openpartner.attribution.touches import touches_for_event
from openpartner.core.ids import new_id
from openpartner.core.time import clock
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.identity.service import bind, clicks_of_customer
from tests.analytics_helpers import day, event, touchpoint
from tests.factories import make_click, make_link, make_partner, make_program

CUSTOMERS = ("c1", "c2", "c3", "c4", "c5", "c6")


def test_every_customers_clicks_match_clicks_of_customer(session: Session) -> None:
    program = make_program(session)
    link = make_link(session, partner=make_partner(session, program=program))
    k1, k2, k3, k4, k5, k6 = (make_click(session, link=link).id for _ in range(6))
    bind(session, program, customer_id="c1", click_id=k1)
    bind(session, program, customer_id="c2", click_id=k1)  # conflict: k1 stays c1's
    bind(session, program, customer_id="c2", click_id=k2)
    bind(session, program, customer_id="c3", visitor_id="v1", click_id=k3)
    bind(session, program, customer_id="c4", click_id=k4)
    bind(session, program, customer_id="c3", visitor_id="v1", click_id=k4)  # k4 is c4's
    bind(session, program, customer_id="c6", visitor_id="v1")  # conflict: v1 stays c3's
    bind(session, program, customer_id="c5", visitor_id="v2")
    # Clicks carried by a visitor and bound to no customer (as the no-redirect flow records).
    for visitor, click in (("v1", k5), ("v2", k6)):
        session.add(
            IdentityEdge(
                id=new_id("idn"), program_id=program.id, visitor_id=visitor, click_id=click,
                source="api",
            )
        )  # fmt: skip
    session.flush()
    bulk = clicks_by_customer(session, program.id)
    for customer in CUSTOMERS:
        expected = set(clicks_of_customer(session, program.id, customer))
        assert bulk.get(customer, set()) == expected, customer
    assert bulk["c3"] == {k3, k5} and bulk["c5"] == {k6} and "c6" not in bulk


def test_touches_of_a_conversion_match_the_attribution_inputs(
    session: Session, client: TestClient
) -> None:
    program = make_program(session, attribution_window_days=30)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    session.commit()
    link = make_link(session, partner=ada)
    for customer, at in (("c1", day("2025-03-01")), ("c2", day("2025-03-02"))):
        click = make_click(session, link=link, at=at)
        bind(session, program, customer_id=customer, click_id=click.id, visitor_id=f"v-{customer}")
    session.commit()
    touchpoint(client, bob, "referral", day("2025-03-03"), "c1")
    clock.freeze(day("2025-03-04"))
    deal = client.post(
        "/v1/deals", json={"program_id": program.id, "external_id": "crm-1", "customer_id": "c2"}
    ).json()
    on_deal = client.post(
        "/v1/touchpoints",
        json={"partner_id": bob.id, "deal_id": deal["id"], "type": "demo",
              "occurred_at": day("2025-03-04").isoformat()},
    )  # fmt: skip
    assert on_deal.status_code == 201, on_deal.text
    code = client.post("/v1/promotion-codes", json={"partner_id": ada.id, "code": "ADA"})
    assert code.status_code == 201
    event(client, program.id, "sale", day("2025-03-05"), customer_id="c1", amount=100,
          promotion_code="ADA")  # fmt: skip
    clock.freeze(day("2025-03-06"))
    closed = client.post(f"/v1/deals/{deal['id']}/close", json={"amount": 500})
    assert closed.status_code == 200, closed.text
    index = TouchIndex(
        session, program.id, day("2025-02-01"), day("2025-03-31") + timedelta(days=1)
    )
    events = session.scalars(sa.select(Event).where(Event.program_id == program.id)).all()
    assert len(events) == 2
    for conversion in events:
        expected = {t.id for t in touches_for_event(session, conversion) if t.kind != "coupon"}
        assert {t.id for t in index.of_conversion(conversion)} == expected
        assert len(expected) == 2  # one click and one touchpoint each
