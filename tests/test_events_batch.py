"""Batch ingest is set-based, but answers exactly as one-by-one ingest in order would."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.core.ids import new_id
from openpartner.core.money import MAX_AMOUNT
from openpartner.core.time import clock, utc_now
from openpartner.events.models import Event
from openpartner.events.schemas import CreditOut, EventOut
from openpartner.events.service import NewEvent, render
from openpartner.identity.models import IdentityEdge
from tests.factories import make_click, make_link, make_partner, make_program


def sale(program_id: str, key: str, **extra: object) -> dict[str, object]:
    return {
        "program_id": program_id,
        "type": "sale",
        "customer_id": "cus_1",
        "amount": 1000,
        "external_id": key,
        **extra,
    }


def batch(client: TestClient, items: list[dict[str, object]]) -> dict[str, Any]:
    response = client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def outcome(result: dict[str, Any]) -> str:
    return str(result["status"] if result["status"] != "rejected" else result["code"])


def stored(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Event)) or 0


@pytest.fixture
def program_id(session: Session) -> str:
    program = make_program(session)
    session.commit()
    return program.id


@pytest.mark.parametrize(
    ("occurred_at", "metadata", "credits"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), {}, []),
        (
            datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
            {"plan": "pro", "seats": 3, "tags": ["a", "é"], "nested": {"x": None, "y": 1.5}},
            [("ptn_b", 700), ("ptn_a", 200), ("ptn_b", 100)],
        ),
    ],
)
def test_rendering_matches_the_event_schema(
    occurred_at: datetime, metadata: dict[str, Any], credits: list[tuple[str, int]]
) -> None:
    event = NewEvent(
        id="evt_1",
        program_id="prg_1",
        type="sale",
        customer_id="cus_1",
        deal_id=None,
        amount=1000,
        currency="EUR",
        refund_of=None,
        promotion_code="ADA20",
        occurred_at=occurred_at,
        received_at=occurred_at,
        external_id="order-1",
        request_hash="0" * 64,
        source="api",
        metadata=metadata,
    )
    totals: dict[str, int] = {}
    for partner, amount in credits:
        totals[partner] = totals.get(partner, 0) + amount
    expected = EventOut(
        id="evt_1",
        type="sale",
        program_id="prg_1",
        customer_id="cus_1",
        amount=1000,
        currency="EUR",
        occurred_at=occurred_at,
        external_id="order-1",
        refund_of=None,
        promotion_code="ADA20",
        deal_id=None,
        metadata=metadata,
        attributed_to=[
            CreditOut(partner_id=p, amount=a, currency="EUR") for p, a in sorted(totals.items())
        ],
    ).model_dump(mode="json")
    rows = [{"partner_id": p, "amount": a} for p, a in credits]
    assert render(event, rows) == expected


def test_a_key_repeated_within_one_batch(
    client: TestClient, program_id: str, session: Session
) -> None:
    body = batch(
        client,
        [
            sale(program_id, "k"),
            sale(program_id, "k"),
            sale(program_id, "k", amount=2000),
            sale(program_id, "j", amount="0.001"),  # invalid first...
            sale(program_id, "j"),  # ...then valid: stored
        ],
    )
    results = body["results"]
    assert [outcome(r) for r in results] == [
        "accepted",
        "duplicate",
        "idempotency_conflict",
        "invalid_amount",
        "accepted",
    ]
    assert results[1]["id"] == results[0]["id"]
    assert stored(session) == 2


def test_an_amount_above_the_maximum_is_refused_and_the_maximum_accepted(
    client: TestClient, program_id: str, session: Session
) -> None:
    single = client.post("/v1/events", json=sale(program_id, "big", amount=2**63))
    assert single.status_code == 422 and single.json()["code"] == "invalid_amount"
    body = batch(
        client,
        [
            sale(program_id, "big", amount=MAX_AMOUNT + 1),
            sale(program_id, "max", amount=MAX_AMOUNT),
        ],
    )
    assert [outcome(r) for r in body["results"]] == ["invalid_amount", "accepted"]
    assert stored(session) == 1


def test_an_invalid_item_whose_key_is_taken_answers_as_a_retry_would(
    client: TestClient, program_id: str, session: Session
) -> None:
    client.post("/v1/events", json=sale(program_id, "old"))
    body = batch(
        client,
        [
            sale(program_id, "old", amount="0.001"),  # stored before, other body
            sale(program_id, "new"),
            sale(program_id, "new", customer_id="undefined"),  # stored by the item above
        ],
    )
    assert [outcome(r) for r in body["results"]] == [
        "idempotency_conflict",
        "accepted",
        "idempotency_conflict",
    ]
    assert stored(session) == 2


def test_a_retry_is_a_replay_even_when_the_event_would_now_be_refused(
    client: TestClient, program_id: str
) -> None:
    now = utc_now()
    clock.freeze(now)
    first = client.post("/v1/events", json=sale(program_id, "o", occurred_at=now.isoformat()))
    assert first.status_code == 201
    clock.advance(timedelta(days=31))  # occurred_at is now beyond the backdating bound
    single = client.post("/v1/events", json=sale(program_id, "o", occurred_at=now.isoformat()))
    assert single.status_code == 201 and single.headers["idempotent-replayed"] == "true"
    assert single.json() == first.json()
    again = batch(client, [sale(program_id, "o", occurred_at=now.isoformat())])
    assert [outcome(r) for r in again["results"]] == ["duplicate"]
    fresh = batch(client, [sale(program_id, "p", occurred_at=now.isoformat())])
    assert [outcome(r) for r in fresh["results"]] == ["occurred_at_too_old"]


def test_refunds_in_a_batch_see_the_items_before_them(
    client: TestClient, program_id: str, session: Session
) -> None:
    def refund(key: str, of: str, **extra: object) -> dict[str, object]:
        return {"program_id": program_id, "type": "refund", "refund_of": of, "external_id": key}

    items = [
        refund("r0", "s2"),  # its sale comes later in the batch: unknown
        sale(program_id, "s1", amount=1000),
        refund("r1", "s1") | {"amount": 400},
        refund("r2", "s1"),  # the remaining 600
        refund("r3", "s1") | {"amount": 1},  # nothing left
        sale(program_id, "s2", amount=500),
        refund("r4", "s2"),
        refund("r1", "s1") | {"amount": 400},  # a retry of r1: a duplicate, not "exceeds"
    ]
    body = batch(client, items)
    assert [outcome(r) for r in body["results"]] == [
        "unknown_sale",
        "accepted",
        "accepted",
        "accepted",
        "refund_exceeds_sale",
        "accepted",
        "accepted",
        "duplicate",
    ]
    amounts = dict(
        session.execute(
            sa.select(Event.external_id, Event.amount).where(Event.type == "refund")
        ).all()
    )
    assert amounts == {"r1": 400, "r2": 600, "r4": 500}


def test_each_event_of_a_batch_is_attributed_from_its_own_touches(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    ada, bob, eve, coupon_partner, tp_partner = (
        make_partner(session, program=program, name=n) for n in ("Ada", "Bob", "Eve", "Cy", "Di")
    )
    now = utc_now()
    ada_click = make_click(
        session, link=make_link(session, partner=ada), at=now - timedelta(days=3)
    )
    bob_click = make_click(
        session, link=make_link(session, partner=bob), at=now - timedelta(days=2)
    )
    bot_click = make_click(
        session, link=make_link(session, partner=eve), at=now - timedelta(days=1), bot=True
    )
    old_click = make_click(
        session, link=make_link(session, partner=eve), at=now - timedelta(days=90)
    )
    free_click = make_click(
        session, link=make_link(session, partner=eve), at=now - timedelta(hours=2)
    )
    edges = [
        ("c_ada", ada_click.id, None),
        ("c_two", ada_click.id, None),  # a later bind of Ada's click: a conflict, ignored
        ("c_two", bob_click.id, None),
        ("c_bot", bot_click.id, None),
        ("c_old", old_click.id, None),
        ("c_vis", None, "vis_1"),
        ("c_steal", None, "vis_2"),
        ("c_carried", None, "vis_3"),
    ]
    for customer, click, visitor in edges:
        status = "conflict" if customer == "c_two" and click == ada_click.id else "bound"
        session.add(
            IdentityEdge(
                id=new_id("idn"),
                program_id=program.id,
                customer_id=customer,
                click_id=click,
                visitor_id=visitor,
                source="api",
                status=status,
            )
        )
    # Visitors that carried clicks: vis_1 Bob's (bound to c_two first), vis_2 Ada's (bound to
    # c_ada first), vis_3 a click nobody bound.
    carried = (("vis_1", bob_click.id), ("vis_2", ada_click.id), ("vis_3", free_click.id))
    for visitor, click in carried:
        session.add(
            IdentityEdge(
                id=new_id("idn"),
                program_id=program.id,
                click_id=click,
                visitor_id=visitor,
                source="browser",
            )
        )
    session.commit()
    code = client.post("/v1/promotion-codes", json={"partner_id": coupon_partner.id, "code": "cy5"})
    assert code.status_code == 201, code.text
    point = client.post(
        "/v1/touchpoints",
        json={
            "partner_id": tp_partner.id,
            "customer_id": "c_tp",
            "type": "referral",
            "occurred_at": (now - timedelta(hours=1)).isoformat(),
        },
    )
    assert point.status_code == 201, point.text
    customers = ["c_ada", "c_two", "c_bot", "c_old", "c_vis", "c_steal", "c_carried", "c_tp"]
    customers.append("c_none")
    items: list[dict[str, object]] = [sale(program.id, f"o-{c}", customer_id=c) for c in customers]
    items.append(sale(program.id, "o-coupon", customer_id="c_none", promotion_code="CY5"))
    items.append(sale(program.id, "o-lead", customer_id="c_ada", type="lead", amount=None))
    body = batch(client, items)
    assert body["accepted"] == len(items), body
    by_key = {
        e.external_id: e.response["attributed_to"]
        for e in session.scalars(sa.select(Event).where(Event.program_id == program.id))
    }
    winners = {k: [c["partner_id"] for c in v] for k, v in by_key.items()}
    assert winners == {
        "o-c_ada": [ada.id],
        "o-c_two": [bob.id],
        "o-c_bot": [],  # flagged clicks earn nothing
        "o-c_old": [],  # outside the window
        "o-c_vis": [],  # vis_1's click was bound to c_two first
        "o-c_steal": [],  # vis_2's click is Ada's, bound to c_ada first
        "o-c_carried": [eve.id],
        "o-c_tp": [tp_partner.id],
        "o-c_none": [],
        "o-coupon": [coupon_partner.id],
        "o-lead": [ada.id],
    }
    assert by_key["o-lead"] == [{"partner_id": ada.id, "amount": 0, "currency": None}]
    rows = session.scalars(sa.select(AttributionRow)).all()
    kinds = sorted(r.touch_kind for r in rows)
    assert kinds == ["click", "click", "click", "click", "coupon", "touchpoint"]


def test_a_batch_spanning_programs_attributes_within_each(
    client: TestClient, session: Session
) -> None:
    programs = [make_program(session, name=f"P{i}") for i in range(2)]
    partners = []
    for program in programs:
        partner = make_partner(session, program=program)
        click = make_click(session, link=make_link(session, partner=partner))
        session.add(
            IdentityEdge(
                id=new_id("idn"),
                program_id=program.id,
                customer_id="same_customer",
                click_id=click.id,
                source="api",
            )
        )
        partners.append(partner.id)
    session.commit()
    items = [sale(p.id, "k", customer_id="same_customer") for p in programs]
    body = batch(client, items)
    assert body["accepted"] == 2
    answers = [client.get(f"/v1/events/{r['id']}").json() for r in body["results"]]
    assert [[c["partner_id"] for c in a["attributed_to"]] for a in answers] == [
        [partners[0]],
        [partners[1]],
    ]


def test_late_binding_rederives_many_events_once_each(client: TestClient, session: Session) -> None:
    program = make_program(session)
    partner = make_partner(session, program=program)
    click = make_click(session, link=make_link(session, partner=partner))
    session.commit()
    count = 620  # more than one chunk of the set-based delete
    for half in range(2):  # two requests: the test app takes bodies up to 64 KiB
        items = [sale(program.id, f"k{i}") for i in range(half, count, 2)]
        assert batch(client, items)["accepted"] == count // 2
    identify = {"program_id": program.id, "click_id": click.id, "customer_id": "cus_1"}
    assert client.post("/v1/identify", json=identify).json()["attributed_events"] == count
    assert client.post("/v1/identify", json=identify).json()["attributed_events"] == 0
    rows = session.execute(
        sa.select(AttributionRow.event_id, sa.func.count()).group_by(AttributionRow.event_id)
    ).all()
    assert len(rows) == count and {n for _, n in rows} == {1}
