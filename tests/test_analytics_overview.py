"""Program analytics: overview, leaderboard, model usage, ranges. Numbers computed by hand."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.core.time import clock
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from tests.analytics_helpers import click, credit, day, event
from tests.factories import make_partner, make_program

MARCH = "from=2025-03-01&to=2025-03-31"


@dataclass
class Shop:
    program: Program
    ada: Partner
    bob: Partner


@pytest.fixture
def shop(session: Session, client: TestClient) -> Shop:
    """March 2025, USD program. Ada referred cus_a (USD sale, part refunded) and cus_d (EUR
    sale); Bob referred cus_b (signup and sale); cus_c came on their own (sales, a refund), with
    sales a second either side of March."""
    program = make_program(session)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    session.commit()
    pid = program.id
    click(session, client, ada, day("2025-03-01", 10), "cus_a")
    click(session, client, bob, day("2025-03-02"), "cus_b")
    click(session, client, ada, day("2025-03-04"), "cus_d")
    sale_a = event(client, pid, "sale", day("2025-03-10"), customer_id="cus_a", amount=10_000)
    event(client, pid, "signup", day("2025-03-05"), customer_id="cus_b")
    event(client, pid, "sale", day("2025-03-12"), customer_id="cus_b", amount=3_000)
    sale_c = event(client, pid, "sale", day("2025-03-13"), customer_id="cus_c", amount=2_000)
    event(client, pid, "sale", day("2025-03-14"), customer_id="cus_d", amount=7_000, currency="EUR")
    event(client, pid, "refund", day("2025-03-20"), amount=2_500, refund_of=sale_a["id"])
    event(client, pid, "refund", day("2025-03-21"), amount=500, refund_of=sale_c["id"])
    for at, amount in (
        (day("2025-03-31", 23, 59, 59), 1_002),
        (day("2025-04-01", 0), 999),
        (day("2025-02-28", 23, 59, 59), 111),
    ):
        event(client, pid, "sale", at, customer_id="cus_c", amount=amount)
    return Shop(program, ada, bob)


def get(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def money(currency: str, sales: int, refunds: int) -> dict[str, Any]:
    return {"currency": currency, "sales": sales, "refunds": refunds, "net": sales - refunds}


def test_overview_counts_conversions_and_revenue_per_currency(
    client: TestClient, shop: Shop
) -> None:
    body = get(client, f"/v1/programs/{shop.program.id}/analytics/overview?{MARCH}")
    assert body["period"] == {"from": "2025-03-01", "to": "2025-03-31"}
    assert body["conversions"] == {"total": 6, "by_type": {"sale": 5, "signup": 1}}
    # USD: 10 000 + 3 000 + 2 000 + 1 002 in sales; 16 002 / 4 = 4 000.5 rounds half to even.
    assert body["revenue"] == [
        {**money("EUR", 7_000, 0), "sales_count": 1, "average_sale": 7_000},
        {**money("USD", 16_002, 3_000), "sales_count": 4, "average_sale": 4_000},
    ]
    assert body["attributed"] == {
        "conversions": 4,  # Ada's two sales, Bob's signup and sale
        "revenue": [money("EUR", 7_000, 0), money("USD", 13_000, 2_500)],
    }
    assert body["unattributed"] == {
        "conversions": 2,
        "revenue": [money("EUR", 0, 0), money("USD", 3_002, 500)],
    }
    assert "refunds" in body["revenue_basis"]


@pytest.mark.parametrize(
    ("first", "last", "amount"),
    [
        ("2025-03-31", "2025-03-31", 1_002),  # 23:59:59 on the last day is in
        ("2025-04-01", "2025-04-01", 999),  # midnight belongs to the next day
        ("2025-02-28", "2025-02-28", 111),
    ],
)
def test_a_range_includes_its_whole_end_day(
    client: TestClient, shop: Shop, first: str, last: str, amount: int
) -> None:
    path = f"/v1/programs/{shop.program.id}/analytics/overview?from={first}&to={last}"
    body = get(client, path)
    assert body["conversions"] == {"total": 1, "by_type": {"sale": 1}}
    assert body["revenue"] == [
        {**money("USD", amount, 0), "sales_count": 1, "average_sale": amount}
    ]


def test_leaderboard_ranks_by_net_credited_revenue_in_a_currency(
    client: TestClient, shop: Shop
) -> None:
    path = f"/v1/programs/{shop.program.id}/analytics/leaderboard?{MARCH}"
    body = get(client, path)
    assert body["currency"] == "USD"
    assert [(e["rank"], e["name"], e["conversions"], e["net"]) for e in body["data"]] == [
        (1, "Ada", 2, 7_500),
        (2, "Bob", 2, 3_000),
    ]
    assert body["data"][0]["revenue"] == [money("EUR", 7_000, 0), money("USD", 10_000, 2_500)]
    assert body["data"][1]["revenue"] == [money("USD", 3_000, 0)]
    euro = get(client, f"{path}&currency=eur&limit=1")
    assert [(e["partner_id"], e["net"]) for e in euro["data"]] == [(shop.ada.id, 7_000)]


def test_refunds_are_split_over_the_partners_credited_on_the_sale(
    session: Session, client: TestClient
) -> None:
    program = make_program(session)
    ada, bob, cy = (make_partner(session, program=program, name=n) for n in ("Ada", "Bob", "Cy"))
    session.commit()
    sale = event(client, program.id, "sale", day("2025-03-10"), customer_id="cus_x", amount=1_000)
    for partner, amount in ((ada, 334), (bob, 333), (cy, 333)):
        credit(session, sale, partner, amount, Fraction(1, 3))
    event(client, program.id, "refund", day("2025-03-11"), amount=100, refund_of=sale["id"])
    base = f"/v1/programs/{program.id}/analytics"
    board = get(client, f"{base}/leaderboard?{MARCH}")["data"]
    # 100 x 334/1000 = 33.4 and 33.3 twice: 33 each, the leftover unit to Ada's larger remainder.
    refunds = {e["partner_id"]: e["revenue"][0]["refunds"] for e in board}
    assert refunds == {ada.id: 34, bob.id: 33, cy.id: 33}
    # All three net 300 with one conversion: ties go to the smaller partner id.
    assert [e["partner_id"] for e in board] == sorted([ada.id, bob.id, cy.id])
    assert [e["net"] for e in board] == [300, 300, 300]
    overview = get(client, f"{base}/overview?{MARCH}")
    assert overview["attributed"]["revenue"] == [money("USD", 1_000, 100)]


def test_model_usage_counts_events_and_rows_per_model_and_engine_version(
    session: Session, client: TestClient
) -> None:
    program = make_program(session)
    ada, bob, cy = (make_partner(session, program=program, name=n) for n in ("Ada", "Bob", "Cy"))
    session.commit()
    pid = program.id
    first = event(client, pid, "sale", day("2025-03-10"), customer_id="c1", amount=900)
    second = event(client, pid, "sale", day("2025-03-11"), customer_id="c2", amount=500)
    lead = event(client, pid, "lead", day("2025-03-12"), customer_id="c3")
    before = event(client, pid, "sale", day("2025-02-20"), customer_id="c4", amount=100)
    for partner in (ada, bob, cy):
        credit(session, first, partner, 300, Fraction(1, 3))
    for partner in (ada, bob):
        credit(session, second, partner, 250, Fraction(1, 2))
    credit(session, lead, ada, 0, Fraction(1), model="position")
    credit(session, before, ada, 100, Fraction(1))
    body = get(client, f"/v1/programs/{pid}/analytics/models?{MARCH}")
    assert body["program_model"] == "last_click"
    assert body["attributed_events"] == 3
    assert body["data"] == [
        {"model": "linear", "engine_version": "1", "events": 2, "rows": 5},
        {"model": "position", "engine_version": "1", "events": 1, "rows": 1},
    ]


def test_default_range_is_the_last_30_days(session: Session, client: TestClient) -> None:
    program = make_program(session)
    session.commit()
    clock.freeze(day("2025-03-31", 8))
    body = get(client, f"/v1/programs/{program.id}/analytics/overview")
    assert body["period"] == {"from": "2025-03-02", "to": "2025-03-31"}
    only_from = get(client, f"/v1/programs/{program.id}/analytics/models?from=2025-01-01")
    assert only_from["period"] == {"from": "2025-01-01", "to": "2025-03-31"}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("from=2025-03-02&to=2025-03-01", "invalid_range"),
        ("from=2022-01-01&to=2024-12-31", "range_too_long"),
        ("from=2025-02-30", "validation_error"),
        ("to=yesterday", "validation_error"),
        ("from=9999-12-01&to=9999-12-31", "invalid_range"),
        ("to=0001-01-05", "invalid_range"),
        ("from=2030-01-01", "invalid_range"),
    ],
)
def test_bad_ranges_are_422_with_a_code(
    session: Session, client: TestClient, query: str, code: str
) -> None:
    program = make_program(session)
    session.commit()
    clock.freeze(day("2025-03-31"))
    for view in ("overview", "leaderboard", "models", "touch-mix", "data-driven"):
        response = client.get(f"/v1/programs/{program.id}/analytics/{view}?{query}")
        assert response.status_code == 422, (view, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code


def test_two_years_is_the_longest_range(session: Session, client: TestClient) -> None:
    program = make_program(session)
    session.commit()
    ok = client.get(f"/v1/programs/{program.id}/analytics/overview?from=2023-01-01&to=2024-12-31")
    assert ok.status_code == 200, ok.text
    too_long = client.get(
        f"/v1/programs/{program.id}/analytics/overview?from=2022-12-31&to=2024-12-31"
    )
    assert too_long.json()["code"] == "range_too_long"


def test_bad_parameters_and_unknown_programs(session: Session, client: TestClient) -> None:
    program = make_program(session)
    session.commit()
    base = f"/v1/programs/{program.id}/analytics"
    assert client.get(f"{base}/leaderboard?currency=XYZ").json()["code"] == "invalid_currency"
    assert client.get(f"{base}/leaderboard?limit=0").status_code == 422
    assert client.get(f"{base}/recent-conversions?limit=101").status_code == 422
    assert client.get(f"{base}/data-driven?type=refund").json()["code"] == (
        "invalid_conversion_type"
    )
    missing = client.get("/v1/programs/prg_nope/analytics/overview")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
