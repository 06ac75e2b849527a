"""Commissions follow every change of attribution, flat (lead) rewards included: a replay that
changes the weights but not who is credited re-prices the flat rewards too."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.replay import replay
from openpartner.commissions.models import Adjustment, Commission
from openpartner.core.time import clock
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    assert_books_balance,
    commissions_of,
    flat,
    pay_all,
    record,
    refer,
    set_rules,
)

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


def two_touches(session: Session) -> tuple[Program, Partner, Partner]:
    """Customer c1 clicked A's link 3 days ago and B's 1 day ago; a flat lead reward of 5.00."""
    program = make_program(session)
    program.holding_days = 0
    a = make_partner(session, program=program, name="A")
    b = make_partner(session, program=program, name="B")
    refer(session, a, "c1", at=T0 - timedelta(days=3))
    refer(session, b, "c1", at=T0 - timedelta(days=1))
    set_rules(session, program, flat(500, "USD", "lead"), effective_from=T0 - timedelta(days=30))
    return program, a, b


def test_flat_lead_commissions_follow_a_replay_that_only_changes_weights(
    session: Session, settings: Settings
) -> None:
    program, a, b = two_touches(session)
    replay(session, program.id, model="position", params={"first": 30, "last": 70}, dry_run=False)
    lead = record(session, settings, program, "lead", customer_id="c1")
    assert [c.amount for c in commissions_of(session, lead)] == sorted_by_partner(
        {a.id: 150, b.id: 350}
    )
    replay(
        session,
        program.id,
        model="position",
        params={"first": 90, "middle": 0, "last": 10},
        dry_run=False,
    )
    assert [c.amount for c in commissions_of(session, lead)] == sorted_by_partner(
        {a.id: 450, b.id: 50}
    )
    assert_books_balance(session)


def test_flat_commissions_follow_a_set_based_replay_with_the_same_partners(
    session: Session, settings: Settings
) -> None:
    """A, A, B: linear weighs A 2/3 and B 1/3, partner_equal 1/2 each: no amount moves (a lead
    has none), only the weights."""
    program, a, b = two_touches(session)
    refer(session, a, "c1", at=T0 - timedelta(days=2))
    replay(session, program.id, model="linear", dry_run=False)
    lead = record(session, settings, program, "lead", customer_id="c1")
    assert [c.amount for c in commissions_of(session, lead)] == sorted_by_partner(
        {a.id: 333, b.id: 167}
    )
    replay(session, program.id, model="partner_equal", dry_run=False)
    assert [c.amount for c in commissions_of(session, lead)] == [250, 250]
    assert_books_balance(session)


def test_paid_flat_commission_changed_by_a_replay_becomes_an_adjustment(
    session: Session, settings: Settings
) -> None:
    program, a, b = two_touches(session)
    replay(session, program.id, model="position", params={"first": 30, "last": 70}, dry_run=False)
    lead = record(session, settings, program, "lead", customer_id="c1")
    pay_all(session, program)
    replay(
        session,
        program.id,
        model="position",
        params={"first": 90, "middle": 0, "last": 10},
        dry_run=False,
    )
    assert [c.amount for c in commissions_of(session, lead)] == sorted_by_partner(
        {a.id: 150, b.id: 350}
    )  # paid: never rewritten
    assert adjustments(session) == sorted([(a.id, 300), (b.id, -300)])
    assert_books_balance(session)


def sorted_by_partner(amounts: dict[str, int]) -> list[int]:
    return [amount for _, amount in sorted(amounts.items())]


def adjustments(session: Session) -> list[tuple[str, int]]:
    return sorted((a.partner_id, a.amount) for a in session.scalars(sa.select(Adjustment)))


def test_replay_dry_run_reports_the_commission_effect_per_partner(
    session: Session, settings: Settings
) -> None:
    program, a, b = two_touches(session)
    set_rules(
        session,
        program,
        flat(500, "USD", "lead"),
        {"event_type": "sale", "kind": "percent", "rate_bps": 1000},
        effective_from=T0 - timedelta(days=20),
    )
    replay(session, program.id, model="position", params={"first": 30, "last": 70}, dry_run=False)
    record(session, settings, program, "lead", customer_id="c1")
    record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    for model, params in [
        ("position", {"first": 90, "middle": 0, "last": 10}),  # per event
        ("first_click", {}),  # set-based
    ]:
        report = replay(session, program.id, model=model, params=params).as_dict()
        assert report["dry_run"] is True
        # lead 150/350 -> 450/50; sale 10 % of 3,000/7,000 -> of 9,000/1,000 (or 10,000/0)
        a_after, b_after = (450 + 900, 50 + 100) if model == "position" else (500 + 1000, 0)
        assert report["commissions"] == sorted(
            [
                {
                    "partner_id": a.id,
                    "currency": "USD",
                    "current": 450,
                    "replayed": a_after,
                    "difference": a_after - 450,
                },
                {
                    "partner_id": b.id,
                    "currency": "USD",
                    "current": 1050,
                    "replayed": b_after,
                    "difference": b_after - 1050,
                },
            ],
            key=lambda d: str(d["partner_id"]),
        )
    assert sorted(c.amount for c in session.scalars(sa.select(Commission))) == [150, 300, 350, 700]
    assert_books_balance(session)


def test_running_balances_equal_the_sum_of_entries_after_replays(
    session: Session, settings: Settings
) -> None:
    from openpartner.ledger.service import program_balances

    program, _, _ = two_touches(session)
    set_rules(
        session,
        program,
        flat(500, "USD", "lead"),
        {"event_type": "sale", "kind": "percent", "rate_bps": 2000},
        effective_from=T0 - timedelta(days=20),
    )
    record(session, settings, program, "lead", customer_id="c1")
    record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    pay_all(session, program)
    record(session, settings, program, "sale", customer_id="c1", amount=3_000)
    for model, params in [
        ("linear", {}),
        ("position", {"first": 90, "middle": 0, "last": 10}),
        ("first_click", {}),
        ("linear", {}),
    ]:
        replay(session, program.id, model=model, params=params, dry_run=False)
        assert_books_balance(session)  # includes: running balances == sums of entries
    (usd,) = program_balances(session, program.id)
    # Under linear: the lead 250 + 250, the sales 20 % of 10,000 and 3,000; the first sale
    # was paid (2,000 to B under last_click): its changes are adjustments, still owed.
    assert usd.earned == 500 + 2000 + 600
    assert usd.paid == 2000 + 500  # B's paid sale and paid lead reward (last_click: all B's)
    assert usd.owed == usd.earned - usd.paid


def test_flat_lead_commissions_follow_a_late_identify(session: Session, settings: Settings) -> None:
    """A's click is bound, the lead earns A the whole reward; B's earlier click is bound to the
    same customer afterwards: re-deriving splits the reward by the new weights."""
    from openpartner.attribution.service import rederive_customer

    program = make_program(session)
    program.holding_days = 0
    a = make_partner(session, program=program, name="A")
    b = make_partner(session, program=program, name="B")
    set_rules(session, program, flat(500, "USD", "lead"), effective_from=T0 - timedelta(days=30))
    replay(session, program.id, model="position", params={"first": 30, "last": 70}, dry_run=False)
    refer(session, a, "c1", at=T0 - timedelta(days=1))
    lead = record(session, settings, program, "lead", customer_id="c1")
    assert [c.amount for c in commissions_of(session, lead)] == [500]
    refer(session, b, "c1", at=T0 - timedelta(days=3))  # bound late, clicked first
    rederive_customer(session, program.id, "c1")
    assert [c.amount for c in commissions_of(session, lead)] == sorted_by_partner(
        {a.id: 350, b.id: 150}
    )
    assert_books_balance(session)


def test_replay_api_dry_run_answers_the_commission_effect(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program, a, b = two_touches(session)
    replay(session, program.id, model="position", params={"first": 30, "last": 70}, dry_run=False)
    record(session, settings, program, "lead", customer_id="c1")
    session.commit()
    response = client.post(
        f"/v1/programs/{program.id}/attribution/replay",
        json={"model": "position", "params": {"first": 90, "middle": 0, "last": 10}},
    )
    assert response.status_code == 200, response.text
    assert [
        (c["partner_id"], c["current"], c["replayed"], c["difference"])
        for c in response.json()["commissions"]
    ] == sorted([(a.id, 150, 450, 300), (b.id, 350, 50, -300)])
