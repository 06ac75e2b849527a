from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.core.time import clock, utc_now
from openpartner.events.models import Event
from tests.factories import make_click, make_link, make_partner, make_program


@pytest.fixture
def ctx(session: Session) -> dict[str, str]:
    program = make_program(session, currency="USD")
    partner = make_partner(session, program=program)
    link = make_link(session, partner=partner)
    click = make_click(session, link=link, at=utc_now() - timedelta(days=2))
    session.commit()
    return {"program": program.id, "partner": partner.id, "click": click.id}


def sale(ctx: dict[str, str], **extra: object) -> dict[str, object]:
    return {
        "program_id": ctx["program"],
        "type": "sale",
        "customer_id": "cus_1",
        "amount": "49.99",
        "currency": "USD",
        **extra,
    }


def events_count(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Event)) or 0


def test_sale_with_decimal_string_amount(client: TestClient, ctx: dict[str, str]) -> None:
    response = client.post("/v1/events", json=sale(ctx), headers={"Idempotency-Key": "o-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("evt_")
    assert body["amount"] == 4999 and body["currency"] == "USD"
    assert body["external_id"] == "o-1"


def test_idempotent_retry_returns_the_first_response(
    client: TestClient, ctx: dict[str, str], session: Session
) -> None:
    first = client.post("/v1/events", json=sale(ctx, external_id="order-1"))
    again = client.post("/v1/events", json=sale(ctx, external_id="order-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert events_count(session) == 1


def test_same_key_different_body_is_409(
    client: TestClient, ctx: dict[str, str], session: Session
) -> None:
    client.post("/v1/events", json=sale(ctx, external_id="order-1"))
    response = client.post("/v1/events", json=sale(ctx, external_id="order-1", amount="50.00"))
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert events_count(session) == 1


def test_every_event_needs_an_idempotency_key(client: TestClient, ctx: dict[str, str]) -> None:
    response = client.post("/v1/events", json=sale(ctx))
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_required"
    mismatch = client.post(
        "/v1/events", json=sale(ctx, external_id="a"), headers={"Idempotency-Key": "b"}
    )
    assert mismatch.json()["code"] == "idempotency_key_mismatch"


def test_lead_signup_and_custom_types(client: TestClient, ctx: dict[str, str]) -> None:
    for i, kind in enumerate(["lead", "signup", "trial.started"]):
        response = client.post(
            "/v1/events",
            json={
                "program_id": ctx["program"],
                "type": kind,
                "customer_id": "cus_1",
                "external_id": f"e{i}",
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["type"] == kind


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"amount": "1.999"}, "invalid_amount"),
        ({"amount": -5}, "invalid_amount"),
        ({"currency": "XYZ"}, "invalid_currency"),
        ({"amount": None}, "amount_required"),
        ({"customer_id": "undefined"}, "blocked_identifier"),
        ({"customer_id": None}, "customer_required"),
    ],
)
def test_bad_events_are_rejected(
    client: TestClient, ctx: dict[str, str], session: Session, extra: dict[str, object], code: str
) -> None:
    response = client.post("/v1/events", json=sale(ctx, external_id="x", **extra))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert events_count(session) == 0


def test_float_amounts_are_refused(client: TestClient, ctx: dict[str, str]) -> None:
    response = client.post("/v1/events", json=sale(ctx, external_id="x", amount=49.99))
    assert response.status_code == 422


def test_zero_decimal_currency(client: TestClient, ctx: dict[str, str]) -> None:
    body = sale(ctx, external_id="jpy", amount="1500", currency="JPY")
    assert client.post("/v1/events", json=body).json()["amount"] == 1500
    bad = client.post(
        "/v1/events", json=sale(ctx, external_id="jpy2", amount="15.5", currency="JPY")
    )
    assert bad.json()["code"] == "invalid_amount"


def test_late_and_out_of_order_events_within_the_bound(
    client: TestClient, ctx: dict[str, str]
) -> None:
    now = utc_now()
    later = client.post(
        "/v1/events",
        json=sale(ctx, external_id="b", occurred_at=(now - timedelta(days=1)).isoformat()),
    )
    earlier = client.post(
        "/v1/events",
        json=sale(ctx, external_id="a", occurred_at=(now - timedelta(days=29)).isoformat()),
    )
    assert later.status_code == earlier.status_code == 201
    assert earlier.json()["occurred_at"] < later.json()["occurred_at"]


def test_backdating_is_bounded(client: TestClient, ctx: dict[str, str]) -> None:
    now = utc_now()
    old = client.post(
        "/v1/events",
        json=sale(ctx, external_id="old", occurred_at=(now - timedelta(days=31)).isoformat()),
    )
    assert old.status_code == 422 and old.json()["code"] == "occurred_at_too_old"
    future = client.post(
        "/v1/events",
        json=sale(ctx, external_id="f", occurred_at=(now + timedelta(minutes=10)).isoformat()),
    )
    assert future.json()["code"] == "occurred_at_in_future"
    skew = client.post(
        "/v1/events",
        json=sale(ctx, external_id="s", occurred_at=(now + timedelta(minutes=2)).isoformat()),
    )
    assert skew.status_code == 201
    naive = client.post(
        "/v1/events", json=sale(ctx, external_id="n", occurred_at="2026-11-20T10:00:00")
    )
    assert naive.status_code == 422


def test_refunds_reference_the_sale_and_are_bounded(
    client: TestClient, ctx: dict[str, str]
) -> None:
    sold = client.post("/v1/events", json=sale(ctx, external_id="order-9", amount=10000)).json()
    partial = client.post(
        "/v1/events",
        json={
            "program_id": ctx["program"],
            "type": "refund",
            "refund_of": "order-9",
            "amount": 2500,
            "external_id": "r1",
        },
    )
    assert partial.status_code == 201, partial.text
    assert partial.json()["refund_of"] == sold["id"]
    assert partial.json()["amount"] == 2500
    rest = client.post(
        "/v1/events",
        json={
            "program_id": ctx["program"],
            "type": "refund",
            "refund_of": sold["id"],
            "external_id": "r2",
        },
    )
    assert rest.json()["amount"] == 7500  # the remainder by default
    too_much = client.post(
        "/v1/events",
        json={
            "program_id": ctx["program"],
            "type": "refund",
            "refund_of": sold["id"],
            "amount": 1,
            "external_id": "r3",
        },
    )
    assert too_much.json()["code"] == "refund_exceeds_sale"
    unknown = client.post(
        "/v1/events",
        json={
            "program_id": ctx["program"],
            "type": "refund",
            "refund_of": "nope",
            "external_id": "r4",
        },
    )
    assert unknown.status_code == 404


def test_batch_answers_per_item(client: TestClient, ctx: dict[str, str], session: Session) -> None:
    client.post("/v1/events", json=sale(ctx, external_id="dup"))
    items = [
        sale(ctx, external_id="b1"),
        sale(ctx, external_id="dup"),  # same body as before: duplicate
        sale(ctx, external_id="b2", amount="1.001"),  # rejected
        {"type": "sale"},  # no key, no customer
        sale(ctx, external_id="dup", amount="1.00"),  # same key, other body
        sale(ctx, external_id="b3", colour="red"),  # unknown field
        sale(ctx, external_id="b4"),
    ]
    response = client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [
        "accepted",
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    codes = [r.get("code") for r in body["results"]]
    assert codes[2] == "invalid_amount" and codes[4] == "idempotency_conflict"
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    assert events_count(session) == 3


def test_batch_size_is_bounded(client: TestClient, ctx: dict[str, str]) -> None:
    too_many = [sale(ctx, external_id=f"k{i}") for i in range(1001)]
    assert client.post("/v1/events/batch", json={"events": too_many}).status_code in (413, 422)
    assert client.post("/v1/events/batch", json={"events": []}).status_code == 422


def test_event_attributed_to_the_identified_click(
    client: TestClient, ctx: dict[str, str], session: Session
) -> None:
    client.post(
        "/v1/identify",
        json={"program_id": ctx["program"], "click_id": ctx["click"], "customer_id": "cus_1"},
    )
    body = client.post("/v1/events", json=sale(ctx, external_id="o1")).json()
    assert body["attributed_to"] == [
        {"partner_id": ctx["partner"], "amount": 4999, "currency": "USD"}
    ]


def test_late_binding_attributes_earlier_events_exactly_once(
    client: TestClient, ctx: dict[str, str], session: Session
) -> None:
    clock.freeze(utc_now())
    first = client.post("/v1/events", json=sale(ctx, external_id="o1")).json()
    assert first["attributed_to"] == []  # no click bound yet
    body = {"program_id": ctx["program"], "click_id": ctx["click"], "customer_id": "cus_1"}
    bound = client.post("/v1/identify", json=body).json()
    assert bound["new_binding"] is True and bound["attributed_events"] == 1
    repeat = client.post("/v1/identify", json=body).json()
    assert repeat["new_binding"] is False and repeat["attributed_events"] == 0
    rows = session.scalars(
        sa.select(AttributionRow).where(AttributionRow.event_id == first["id"])
    ).all()
    assert [(r.partner_id, r.amount) for r in rows] == [(ctx["partner"], 4999)]


def test_flagged_clicks_and_revoked_partners_earn_nothing(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    bot_link = make_link(session, partner=make_partner(session, program=program))
    bot_click = make_click(session, link=bot_link, bot=True)
    session.commit()
    client.post(
        "/v1/identify",
        json={"program_id": program.id, "click_id": bot_click.id, "customer_id": "c"},
    )
    body = client.post(
        "/v1/events",
        json={
            "program_id": program.id,
            "type": "sale",
            "customer_id": "c",
            "amount": 100,
            "external_id": "x",
        },
    ).json()
    assert body["attributed_to"] == []


def test_get_and_list_events(client: TestClient, ctx: dict[str, str]) -> None:
    created = client.post("/v1/events", json=sale(ctx, external_id="g1")).json()
    got = client.get(f"/v1/events/{created['id']}").json()
    commissions = got.pop("commissions")  # read when asked: ingest's answer has none
    assert got == created
    assert [(c["partner_id"], c["reason"]) for c in commissions] == [
        (a["partner_id"], "no_rule") for a in created["attributed_to"]
    ]
    listed = client.get("/v1/events", params={"customer_id": "cus_1"}).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert client.get("/v1/events/evt_missing").status_code == 404
