from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.core.time import utc_now
from tests.factories import make_partner, make_program


def test_touchpoints_in_order_and_deal_close_attributes(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    referrer = make_partner(session, program=program, name="Referrer")
    closer = make_partner(session, program=program, name="Closer")
    session.commit()
    deal = client.post(
        "/v1/deals",
        json={"program_id": program.id, "external_id": "crm-1", "customer_id": "acct_9"},
    )
    assert deal.status_code == 201, deal.text
    deal_id = deal.json()["id"]
    now = utc_now()
    for partner, kind, days in ((closer, "closer", 1), (referrer, "referral", 10)):
        tp = client.post(
            "/v1/touchpoints",
            json={
                "partner_id": partner.id,
                "deal_id": deal_id,
                "type": kind,
                "occurred_at": (now - timedelta(days=days)).isoformat(),
            },
        )
        assert tp.status_code == 201, tp.text
    closed = client.post(f"/v1/deals/{deal_id}/close", json={"amount": "12000.00"})
    assert closed.status_code == 200, closed.text
    view = client.get(f"/v1/deals/{deal_id}").json()
    assert view["status"] == "closed" and view["amount"] == 1_200_000
    assert [t["type"] for t in view["touchpoints"]] == ["referral", "closer"]
    sale = client.get(f"/v1/events/{view['event_id']}").json()
    assert sale["type"] == "sale" and sale["deal_id"] == deal_id
    # The seam's last-touch derivation credits the last touch; issue 5 brings every model.
    assert sale["attributed_to"] == [
        {"partner_id": closer.id, "amount": 1_200_000, "currency": "USD"}
    ]
    again = client.post(f"/v1/deals/{deal_id}/close", json={"amount": 1})
    assert again.status_code == 409


def test_touchpoint_validation(client: TestClient, session: Session) -> None:
    partner = make_partner(session)
    session.commit()
    bad_type = client.post(
        "/v1/touchpoints", json={"partner_id": partner.id, "type": "lunch", "customer_id": "c"}
    )
    assert bad_type.status_code == 422
    no_target = client.post("/v1/touchpoints", json={"partner_id": partner.id, "type": "demo"})
    assert no_target.json()["code"] == "touch_target_required"
    unknown_deal = client.post(
        "/v1/touchpoints", json={"partner_id": partner.id, "type": "demo", "deal_id": "deal_nope"}
    )
    assert unknown_deal.status_code == 404
    assert client.get("/v1/deals/deal_nope").status_code == 404


def test_open_and_close_in_one_call(client: TestClient, session: Session) -> None:
    program = make_program(session, currency="JPY")
    session.commit()
    deal = client.post(
        "/v1/deals",
        json={"program_id": program.id, "customer_id": "c1", "amount": "150000", "currency": "JPY"},
    ).json()
    assert deal["status"] == "closed" and deal["amount"] == 150000 and deal["currency"] == "JPY"


def test_touchpoint_naming_another_programs_partner_is_refused(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    outsider = make_partner(session, program=make_program(session, name="Other"))
    session.commit()
    deal_id = client.post("/v1/deals", json={"program_id": program.id}).json()["id"]
    refused = client.post(
        "/v1/touchpoints",
        json={"partner_id": outsider.id, "deal_id": deal_id, "type": "referral"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "partner_not_in_program"
    assert refused.json()["errors"][0]["loc"] == ["body", "partner_id"]
    assert client.get(f"/v1/deals/{deal_id}").json()["touchpoints"] == []


def test_retried_deal_close_answers_as_the_first_and_a_different_close_conflicts(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    partner = make_partner(session, program=program)
    session.commit()
    deal_id = client.post("/v1/deals", json={"program_id": program.id, "customer_id": "c1"}).json()[
        "id"
    ]
    client.post(
        "/v1/touchpoints", json={"partner_id": partner.id, "deal_id": deal_id, "type": "closer"}
    )
    close = {"amount": "120.00", "currency": "usd", "closed_at": utc_now().isoformat()}
    first = client.post(f"/v1/deals/{deal_id}/close", json=close)
    assert first.status_code == 200, first.text
    for retry in (close, {"amount": 12_000}, {"amount": "120.00", "currency": "USD"}):
        again = client.post(f"/v1/deals/{deal_id}/close", json=retry)
        assert (again.status_code, again.json()) == (200, first.json())
    events = client.get("/v1/events", params={"program_id": program.id}).json()["data"]
    assert [e["id"] for e in events] == [first.json()["event_id"]]  # one sale, never two
    for other, field in (
        ({"amount": "121.00"}, "amount"),
        ({"amount": "120.00", "currency": "EUR"}, "currency"),
        ({"amount": "120.00", "closed_at": "2030-01-01T00:00:00Z"}, "closed_at"),
        ({"amount": "120.00", "model": "linear"}, "model"),
    ):
        conflict = client.post(f"/v1/deals/{deal_id}/close", json=other)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["code"] == "deal_close_conflict"
        assert [e["loc"] for e in conflict.json()["errors"]] == [["body", field]]
    assert client.get(f"/v1/deals/{deal_id}").json() == first.json()


def test_deal_breakdown_names_partners_and_says_when_it_was_calculated(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    ada = make_partner(session, program=program, name="Ada Referrals")
    session.commit()
    deal_id = client.post("/v1/deals", json={"program_id": program.id}).json()["id"]
    client.post("/v1/touchpoints", json={"partner_id": ada.id, "deal_id": deal_id, "type": "demo"})
    client.post(f"/v1/deals/{deal_id}/close", json={"amount": 5000})
    before = utc_now()
    body = client.get(f"/v1/deals/{deal_id}/attribution", params={"model": "role_based"}).json()
    assert [(p["partner_id"], p["partner_name"]) for p in body["partners"]] == [
        (ada.id, "Ada Referrals")
    ]
    assert before <= datetime.fromisoformat(body["calculated_at"]) <= utc_now()
