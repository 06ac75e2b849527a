"""Markov removal effect and Shapley over a program's partner journeys (analytics only)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.analytics_helpers import click, day, event, touchpoint
from tests.factories import make_partner, make_program

MARCH = "from=2025-03-01&to=2025-03-31"


def journeys(session: Session, client: TestClient) -> tuple[str, str, str]:
    """Journeys in March: Ada -> converted, Bob -> lost, Ada Bob -> converted (a signup),
    Bob -> converted; plus customers that must not count (see comments)."""
    program = make_program(session)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    cy = make_partner(session, program=program, name="Cy")
    session.commit()
    pid = program.id
    click(session, client, ada, day("2025-03-01"), "cus_1")
    event(client, pid, "sale", day("2025-03-05"), customer_id="cus_1", amount=1_000)
    click(session, client, bob, day("2025-03-10"), "cus_1")  # after cus_1's first conversion
    event(client, pid, "sale", day("2025-03-20"), customer_id="cus_1", amount=1_000)
    click(session, client, bob, day("2025-03-02"), "cus_2")  # never converts
    click(session, client, ada, day("2025-03-03"), "cus_3")
    touchpoint(client, bob, "intro", day("2025-03-04"), "cus_3")
    event(client, pid, "signup", day("2025-03-06"), customer_id="cus_3")
    click(session, client, bob, day("2025-03-04"), "cus_4")
    event(client, pid, "sale", day("2025-03-07"), customer_id="cus_4", amount=500)
    click(session, client, ada, day("2025-03-08"), "cus_5", bot=True)  # flagged only
    click(session, client, cy, day("2025-03-08"), "cus_6")  # revoked partner only
    cy.status = "revoked"
    session.commit()
    event(client, pid, "sale", day("2025-03-09"), customer_id="cus_7", amount=700)  # no partner
    click(session, client, bob, day("2025-02-20"), "cus_8")  # lost, but before the range
    return pid, ada.id, bob.id


def get(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_markov_and_shapley_over_converting_and_lost_journeys(
    session: Session, client: TestClient
) -> None:
    pid, ada, bob = journeys(session, client)
    body = get(client, f"/v1/programs/{pid}/analytics/data-driven?{MARCH}")
    assert body["notice"] == "Analytics only, never used for payouts."
    assert body["exact"] is True
    assert body["journeys"] == {
        "total": 4,
        "converted": 3,
        "not_converted": 1,
        "conversions_without_partner_touch": 1,
    }
    # Start -> Ada or Bob (1/2 each); Ada converts 1/2, goes on to Bob 1/2; Bob converts 2/3.
    # P = 1/2 (1/2 + 1/2 * 2/3) + 1/2 * 2/3 = 3/4. Without Ada 1/3 (effect 5/9), without Bob
    # 1/4 (effect 2/3): shares 5/11 and 6/11.
    assert body["conversion_probability"] == {"fraction": "3/4", "percent": "75.00"}
    bob_row, ada_row = body["data"]
    assert (bob_row["partner_id"], ada_row["partner_id"]) == (bob, ada)
    assert (bob_row["name"], bob_row["journeys"], bob_row["converted_journeys"]) == ("Bob", 3, 2)
    assert (ada_row["journeys"], ada_row["converted_journeys"]) == (2, 2)
    assert bob_row["removal_effect"] == {"fraction": "2/3", "percent": "66.67"}
    assert ada_row["removal_effect"] == {"fraction": "5/9", "percent": "55.56"}
    assert bob_row["markov_share"] == {"fraction": "6/11", "percent": "54.55"}
    assert ada_row["markov_share"] == {"fraction": "5/11", "percent": "45.45"}
    # Shapley: {Ada} converts 1/1, {Bob} 1/2, {Ada, Bob} 1/1. In the Ada-and-Bob journey Ada's
    # marginal is 1 (first) or 1 - 1/2 (after Bob): 3/4; Bob's 0 or 1/2: 1/4.
    # Ada = 1 + 3/4 = 7/4, Bob = 2 * 1/2 + 1/4 = 5/4: the 3 conversions, 7/12 and 5/12.
    assert (ada_row["shapley_value"], bob_row["shapley_value"]) == ("7/4", "5/4")
    assert ada_row["shapley_share"] == {"fraction": "7/12", "percent": "58.33"}
    assert bob_row["shapley_share"] == {"fraction": "5/12", "percent": "41.67"}


def test_a_conversion_type_makes_other_conversions_lost_journeys(
    session: Session, client: TestClient
) -> None:
    pid, _, _ = journeys(session, client)
    body = get(client, f"/v1/programs/{pid}/analytics/data-driven?{MARCH}&type=sale")
    # cus_3 only signed up: Ada Bob is now lost. Start: Ada 1/2, Bob 1/2; Ada converts 1/2 and
    # goes to Bob 1/2; Bob converts 1/3. P = 1/2 (1/2 + 1/2 * 1/3) + 1/2 * 1/3 = 1/2.
    assert body["journeys"]["converted"] == 2 and body["journeys"]["not_converted"] == 2
    assert body["conversion_probability"]["fraction"] == "1/2"
    assert body["conversion_type"] == "sale"


def test_touches_outside_the_window_are_not_in_the_journey(
    session: Session, client: TestClient
) -> None:
    program = make_program(session, attribution_window_days=7)
    ada = make_partner(session, program=program, name="Ada")
    bob = make_partner(session, program=program, name="Bob")
    session.commit()
    click(session, client, ada, day("2025-03-01"), "cus_1")  # 9 days before: outside
    click(session, client, bob, day("2025-03-08"), "cus_1")
    event(client, program.id, "sale", day("2025-03-10"), customer_id="cus_1", amount=100)
    body = get(client, f"/v1/programs/{program.id}/analytics/data-driven?{MARCH}")
    assert [(p["partner_id"], p["journeys"]) for p in body["data"]] == [(bob.id, 1)]
    assert body["data"][0]["removal_effect"]["fraction"] == "1/1"


def test_no_journeys_gives_an_empty_answer(session: Session, client: TestClient) -> None:
    program = make_program(session)
    session.commit()
    body = get(client, f"/v1/programs/{program.id}/analytics/data-driven?{MARCH}")
    assert body["data"] == [] and body["journeys"]["total"] == 0
    assert body["conversion_probability"] == {"fraction": "0/1", "percent": "0.00"}
