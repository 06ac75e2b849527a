"""Refunds and re-derivation: unpaid commissions change in place, paid ones by adjustments that
are netted against the partner's next payout. Exact to the unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.attribution.service import rederive_customer
from openpartner.commissions.models import Adjustment
from openpartner.commissions.service import sync_event
from openpartner.core.ids import new_id
from openpartner.core.time import clock
from openpartner.identity.service import bind
from openpartner.ledger.service import partner_balances
from openpartner.partners.models import Partner
from openpartner.payouts.service import run_payouts
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import (
    approve_all,
    assert_books_balance,
    commissions_of,
    flat,
    only_commission,
    pay_all,
    percent,
    record,
    refund,
    sale,
    set_rules,
)

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


@pytest.fixture
def program(session: Session) -> Program:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    return program


@pytest.fixture
def partner(session: Session, program: Program) -> Partner:
    return make_partner(session, program=program)


def test_full_refund_reverses_an_unpaid_commission(
    session: Session, settings: Settings, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_000)
    refund(session, settings, event)
    commission = only_commission(session, event)
    assert (commission.status, commission.reversed_by) == ("reversed", "system:refund")
    (balance,) = partner_balances(session, partner.id)
    assert (balance.pending, balance.earned) == (0, 0)
    assert_books_balance(session)


def test_partial_refunds_shrink_an_approved_commission_exactly(
    session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_001)  # 1000.1 -> 1000
    approve_all(session, program)
    kept = []
    for cut in (3_333, 3_333, 3_334, 1):
        refund(session, settings, event, cut)
        commission = only_commission(session, event)
        kept.append((commission.amount, commission.status))
    # 1000 x 6668/10001 = 666.7 -> 667; x 3335/10001 = 333.47 -> 333; x 1/10001 = 0.1 -> 0:
    # reversed (keeping its last amount for the record); the last unit refunded changes nothing.
    assert kept == [(667, "approved"), (333, "approved"), (333, "reversed"), (333, "reversed")]
    (balance,) = partner_balances(session, partner.id)
    assert (balance.approved, balance.earned) == (0, 0)
    assert_books_balance(session)


def test_refund_is_split_exactly_between_partners(
    session: Session, settings: Settings, program: Program
) -> None:
    """Three partners share a sale (rows as a multi-touch engine writes them); refunds reverse
    each partner's commission in proportion and the parts always add up."""
    partners = [make_partner(session, program=program) for _ in range(3)]
    event = record(session, settings, program, "sale", customer_id="cus_x", amount=10_000)
    for share, partner in zip((3_334, 3_333, 3_333), partners, strict=True):
        session.add(
            AttributionRow(
                id=new_id("att"), program_id=program.id, event_id=event.id,
                partner_id=partner.id, touch_id=new_id("clk"), touch_kind="click",
                weight="1/3", amount=share, currency="USD", model="linear", engine_version="0",
            )
        )  # fmt: skip
    session.flush()
    sync_event(session, event)
    before = [c.amount for c in commissions_of(session, event)]
    assert sorted(before) == [333, 333, 333]
    refund(session, settings, event, 5_000)
    after = {c.partner_id: c.amount for c in commissions_of(session, event)}
    assert sorted(after.values()) == [167, 167, 167]  # 166.5 each: ties go to what is kept
    refund(session, settings, event)  # the rest
    assert all(c.status == "reversed" for c in commissions_of(session, event))
    assert_books_balance(session)


def test_refund_of_paid_commission_becomes_negative_adjustment_netted_next_payout(
    session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_000)
    (first,) = pay_all(session, program)
    assert first.amount == 1000
    refund(session, settings, event, 5_000)
    commission = only_commission(session, event)
    assert (commission.status, commission.amount) == ("paid", 1000)  # paid money is not rewritten
    (adjustment,) = session.scalars(sa.select(Adjustment)).all()
    assert (adjustment.amount, adjustment.reason, adjustment.commission_id) == (
        -500,
        "refund",
        commission.id,
    )
    assert_books_balance(session)

    sale(session, settings, partner, 20_000)
    (second,) = pay_all(session, program)
    assert second.amount == 2000 - 500
    (balance,) = partner_balances(session, partner.id)
    assert (balance.paid, balance.earned, balance.approved) == (2500, 2500, 0)
    assert_books_balance(session)


def test_a_clawback_larger_than_the_balance_is_carried(
    session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_000)
    pay_all(session, program)
    refund(session, settings, event)
    run = run_payouts(session, program, "key_test")
    assert run.summary == {
        "payouts": [],
        "carried": [
            {
                "partner_id": partner.id,
                "currency": "USD",
                "amount": -1000,
                "reason": "below_minimum",
            }
        ],
    }
    (balance,) = partner_balances(session, partner.id)
    assert (balance.approved, balance.paid, balance.earned) == (-1000, 1000, 0)
    assert_books_balance(session)


def test_refund_while_the_payout_is_in_flight_is_an_adjustment(
    session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_000)
    approve_all(session, program)
    run = run_payouts(session, program, "key_test")
    refund(session, settings, event, 2_500)
    commission = only_commission(session, event)
    assert (commission.amount, commission.payout_id) == (
        1000,
        run.summary["payouts"][0]["payout_id"],
    )
    assert [a.amount for a in session.scalars(sa.select(Adjustment))] == [-250]
    assert_books_balance(session)


def _click_for(session: Session, partner: Partner, customer: str, at: datetime) -> None:
    click = make_click(session, link=make_link(session, partner=partner), at=at)
    bind(
        session,
        session.get_one(Program, partner.program_id),
        customer_id=customer,
        click_id=click.id,
    )


def test_rederived_attribution_adjusts_a_paid_commission_and_pays_the_new_partner(
    session: Session, settings: Settings, program: Program
) -> None:
    first, later = make_partner(session, program=program), make_partner(session, program=program)
    _click_for(session, first, "cus_late", T0 - timedelta(hours=2))
    event = record(session, settings, program, "sale", customer_id="cus_late", amount=10_000)
    pay_all(session, program)
    # A late identify binds a later click of another partner: last click moves to them.
    _click_for(session, later, "cus_late", T0 - timedelta(hours=1))
    rederive_customer(session, program.id, "cus_late")
    rederive_customer(session, program.id, "cus_late")  # re-deriving twice changes nothing more
    by_partner = {c.partner_id: c for c in commissions_of(session, event)}
    assert (by_partner[first.id].status, by_partner[later.id].status) == ("paid", "pending")
    assert [(a.partner_id, a.amount, a.reason) for a in session.scalars(sa.select(Adjustment))] == [
        (first.id, -1000, "attribution")
    ]
    assert_books_balance(session)


def test_attribution_moving_away_and_back_reopens_the_commission(
    session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    set_rules(session, program, flat(700, "USD"))
    event = sale(session, settings, partner, 10_000)
    session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id == event.id))
    sync_event(session, event)
    assert only_commission(session, event).status == "reversed"
    rederive_customer(session, program.id, event.customer_id or "")
    commission = only_commission(session, event)
    assert (commission.status, commission.amount) == ("pending", 700)
    assert_books_balance(session)


def test_adjustments_and_liability_through_the_api(
    client: TestClient, session: Session, settings: Settings, program: Program, partner: Partner
) -> None:
    event = sale(session, settings, partner, 10_000)
    pay_all(session, program)
    refund(session, settings, event, 2_000)
    sale(session, settings, partner, 30_000, "EUR")
    session.commit()
    unpaid = client.get("/v1/adjustments", params={"unpaid": "true"}).json()["data"]
    assert [(a["amount"], a["currency"], a["reason"]) for a in unpaid] == [(-200, "USD", "refund")]
    liability = client.get(f"/v1/programs/{program.id}/liability").json()["balances"]
    assert [(b["currency"], b["pending"], b["approved"], b["paid"]) for b in liability] == [
        ("EUR", 3000, 0, 0),
        ("USD", 0, -200, 1000),
    ]
    detail = client.get(f"/v1/commissions/{only_commission(session, event).id}").json()
    assert [a["amount"] for a in detail["adjustments"]] == [-200]
    assert [t["action"] for t in detail["audit"]] == [
        "accrued",
        "approved",
        "paid",
        "adjusted_after_payment",
    ]
    assert_books_balance(session)
