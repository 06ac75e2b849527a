"""Per-partner analytics, touch mix, recent conversions and who may read what."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.accounts.service import create_key
from tests.analytics_helpers import click, day, event, touchpoint
from tests.factories import make_partner, make_program

Q1 = "from=2025-01-01&to=2025-03-31"


def get(client: TestClient, path: str, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def money(currency: str, sales: int, refunds: int) -> dict[str, Any]:
    return {"currency": currency, "sales": sales, "refunds": refunds, "net": sales - refunds}


def quarter(session: Session, client: TestClient) -> tuple[Any, Any, Any]:
    """Ada: a USD sale in January (4 000 of it refunded in March), an EUR sale in February, a
    lead in March. Bob: a USD sale in February."""
    program = make_program(session)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    session.commit()
    pid = program.id
    click(session, client, ada, day("2025-01-10"), "cus_1")
    click(session, client, bob, day("2025-02-01"), "cus_2")
    january = event(client, pid, "sale", day("2025-01-15"), customer_id="cus_1", amount=10_000)
    event(client, pid, "sale", day("2025-02-10"), customer_id="cus_2", amount=5_000)
    event(client, pid, "sale", day("2025-02-12"), customer_id="cus_1", amount=2_000, currency="EUR")
    event(client, pid, "refund", day("2025-03-05"), amount=4_000, refund_of=january["id"])
    event(client, pid, "lead", day("2025-03-06"), customer_id="cus_1")
    return program, ada, bob


def test_partner_analytics_with_share_touch_mix_and_months(
    session: Session, client: TestClient
) -> None:
    program, ada, _ = quarter(session, client)
    body = get(client, f"/v1/partners/{ada.id}/analytics?{Q1}")
    assert (body["partner_id"], body["program_id"], body["name"]) == (ada.id, program.id, "Ada")
    assert body["conversions"] == {"total": 3, "by_type": {"lead": 1, "sale": 2}}
    assert body["revenue"] == [money("EUR", 2_000, 0), money("USD", 10_000, 4_000)]
    # The program's attributed net: USD 6 000 (Ada) + 5 000 (Bob); EUR 2 000 (Ada only).
    assert body["revenue_share"] == [
        {
            "currency": "EUR",
            "partner_net": 2_000,
            "program_net": 2_000,
            "share": {"fraction": "1/1", "percent": "100.00"},
        },
        {
            "currency": "USD",
            "partner_net": 6_000,
            "program_net": 11_000,
            "share": {"fraction": "6/11", "percent": "54.55"},
        },
    ]
    assert body["touch_mix"] == [
        {
            "kind": "click",
            "type": None,
            "recorded": 1,
            "flagged": 0,
            "credited": 3,
            "credited_events": 3,
            "credited_share": {"fraction": "1/1", "percent": "100.00"},
        }
    ]
    assert body["months"] == [
        {"month": "2025-01", "conversions": 1, "revenue": [money("USD", 10_000, 0)]},
        {"month": "2025-02", "conversions": 1, "revenue": [money("EUR", 2_000, 0)]},
        {"month": "2025-03", "conversions": 1, "revenue": [money("USD", 0, 4_000)]},
    ]


def test_months_cover_the_range_even_when_empty(session: Session, client: TestClient) -> None:
    _, ada, _ = quarter(session, client)
    body = get(client, f"/v1/partners/{ada.id}/analytics?from=2024-12-31&to=2025-02-01")
    assert [(m["month"], m["conversions"]) for m in body["months"]] == [
        ("2024-12", 0),
        ("2025-01", 1),
        ("2025-02", 0),
    ]
    # The March refund is outside this range: January's sale counts in full.
    assert body["revenue"] == [money("USD", 10_000, 0)]


def test_a_partner_key_reads_only_its_own_analytics(session: Session, client: TestClient) -> None:
    program, ada, bob = quarter(session, client)
    token = create_key(
        session,
        kind="secret",
        scopes=["attribution:read"],
        program_id=program.id,
        partner_id=ada.id,
    ).token
    session.commit()
    own = get(client, f"/v1/partners/{ada.id}/analytics?{Q1}", token)
    assert own["revenue"] == [money("EUR", 2_000, 0), money("USD", 10_000, 4_000)]
    assert own["revenue_share"] is None  # it would reveal the other partners' total
    auth = {"Authorization": f"Bearer {token}"}
    other = client.get(f"/v1/partners/{bob.id}/analytics?{Q1}", headers=auth)
    assert other.status_code == 404 and other.json()["code"] == "not_found"
    for view in ("overview", "leaderboard", "models", "touch-mix", "recent-conversions"):
        response = client.get(f"/v1/programs/{program.id}/analytics/{view}", headers=auth)
        assert response.status_code == 403, view
        assert response.json()["code"] == "partner_key_forbidden"


def test_a_program_key_cannot_read_another_program(session: Session, client: TestClient) -> None:
    program, ada, _ = quarter(session, client)
    elsewhere = make_program(session, name="Elsewhere")
    session.commit()
    token = create_key(
        session, kind="secret", scopes=["attribution:read"], program_id=elsewhere.id
    ).token
    no_scope = create_key(session, kind="secret", scopes=["events:read"]).token
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    for path in (
        f"/v1/programs/{program.id}/analytics/overview",
        f"/v1/programs/{program.id}/analytics/data-driven",
        f"/v1/partners/{ada.id}/analytics",
    ):
        response = client.get(path, headers=auth)
        assert response.status_code == 404, path
    assert get(client, f"/v1/programs/{elsewhere.id}/analytics/overview", token)
    denied = client.get(
        f"/v1/programs/{program.id}/analytics/overview",
        headers={"Authorization": f"Bearer {no_scope}"},
    )
    assert denied.status_code == 403 and denied.json()["code"] == "missing_scope"
    assert client.get("/v1/partners/ptn_nope/analytics").status_code == 404


def test_touch_mix_counts_recorded_and_credited_touches(
    session: Session, client: TestClient
) -> None:
    program = make_program(session)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    session.commit()
    pid = program.id
    click(session, client, ada, day("2025-03-05"), "cus_1")
    click(session, client, ada, day("2025-03-12"), bot=True)
    click(session, client, bob, day("2025-02-20"), "cus_9")  # before the range
    touchpoint(client, bob, "referral", day("2025-03-07"), "cus_2")
    touchpoint(client, ada, "demo", day("2025-03-08"), "cus_2")
    touchpoint(client, bob, "referral", day("2025-03-11"), "cus_4")
    code = client.post("/v1/promotion-codes", json={"partner_id": ada.id, "code": "ada20"})
    assert code.status_code == 201, code.text
    event(client, pid, "sale", day("2025-03-06"), customer_id="cus_1", amount=1_000)
    event(client, pid, "sale", day("2025-03-09"), customer_id="cus_2", amount=1_000)
    event(client, pid, "sale", day("2025-03-10"), customer_id="cus_3", amount=1_000,
          promotion_code="Ada20")  # fmt: skip
    body = get(client, f"/v1/programs/{pid}/analytics/touch-mix?from=2025-03-01&to=2025-03-31")
    third = {"fraction": "1/3", "percent": "33.33"}
    none = {"fraction": "0/1", "percent": "0.00"}
    assert [
        (i["kind"], i["type"], i["recorded"], i["flagged"], i["credited"], i["credited_share"])
        for i in body["data"]
    ] == [
        ("click", None, 2, 1, 1, third),
        ("coupon", None, 1, 0, 1, third),
        ("touchpoint", "demo", 1, 0, 1, third),  # the last touch before cus_2's sale
        ("touchpoint", "referral", 2, 0, 0, none),
    ]


def test_recent_conversions_show_their_credits_newest_first(
    session: Session, client: TestClient
) -> None:
    program, ada, bob = quarter(session, client)
    body = get(client, f"/v1/programs/{program.id}/analytics/recent-conversions?limit=3")
    assert [(c["type"], c["amount"], c["currency"]) for c in body["data"]] == [
        ("lead", None, None),
        ("sale", 2_000, "EUR"),
        ("sale", 5_000, "USD"),
    ]
    lead, euro, bobs = body["data"]
    assert lead["credits"] == [{"partner_id": ada.id, "name": "Ada", "amount": 0, "weight": "1/1"}]
    assert euro["attributed"] and euro["refunded"] == 0
    assert bobs["credits"] == [
        {"partner_id": bob.id, "name": "Bob", "amount": 5_000, "weight": "1/1"}
    ]
    everything = get(client, f"/v1/programs/{program.id}/analytics/recent-conversions")
    january = everything["data"][-1]
    assert (january["amount"], january["refunded"]) == (10_000, 4_000)
