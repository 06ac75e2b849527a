"""Payout runs: grouping per partner and currency, minimums carried over, manual mass-pay,
cancellation, schedules, and two runs at once."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.service import create_key
from openpartner.commissions.models import Commission
from openpartner.core.time import clock
from openpartner.ledger.service import partner_balances, program_balances
from openpartner.payouts.models import Payout, PayoutItem
from openpartner.payouts.schedule import next_run_at, tick
from openpartner.payouts.service import run_payouts
from openpartner.programs.models import Program
from openpartner.settings import Settings
from openpartner.worker.queue import run_until_idle
from tests.conftest import create_test_database
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    approve_all,
    assert_books_balance,
    only_commission,
    percent,
    sale,
    scratch_database,
    set_rules,
)

T0 = datetime(2025, 3, 5, 9, tzinfo=UTC)  # a Wednesday


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


@pytest.fixture
def program(session: Session) -> Program:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    return program


def test_a_run_pays_each_partner_per_currency(
    session: Session, settings: Settings, program: Program
) -> None:
    ada, bob = make_partner(session, program=program), make_partner(session, program=program)
    sale(session, settings, ada, 10_000)
    sale(session, settings, ada, 5_000)
    sale(session, settings, ada, 12_000, "JPY")
    sale(session, settings, ada, 10_000, "BHD")  # 3 minor digits: 10.000 BHD
    sale(session, settings, bob, 2_000)
    approve_all(session, program)
    run = run_payouts(session, program, "key_test")
    made = {(p["partner_id"], p["currency"]): p["amount"] for p in run.summary["payouts"]}
    assert made == {
        (ada.id, "USD"): 1500,
        (ada.id, "JPY"): 1200,
        (ada.id, "BHD"): 1000,
        (bob.id, "USD"): 200,
    }
    assert {b.currency: b.processing for b in partner_balances(session, ada.id)} == {
        "BHD": 1000,
        "JPY": 1200,
        "USD": 1500,
    }
    assert {b.currency: b.owed for b in program_balances(session, program.id)} == {
        "BHD": 1000,
        "JPY": 1200,
        "USD": 1700,
    }
    assert run_payouts(session, program, "key_test").summary == {"payouts": [], "carried": []}
    assert_books_balance(session)


def test_balances_under_the_minimum_are_carried_to_the_next_run(
    session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0, payout_minimums={"usd": 5_000})
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    sale(session, settings, partner, 30_000)
    approve_all(session, program)
    first = run_payouts(session, program, "key_test")
    assert first.summary["carried"] == [
        {"partner_id": partner.id, "currency": "USD", "amount": 3000, "reason": "below_minimum"}
    ]
    sale(session, settings, partner, 25_000)
    approve_all(session, program)
    second = run_payouts(session, program, "key_test")
    assert [p["amount"] for p in second.summary["payouts"]] == [5_500]
    payout = session.get_one(Payout, second.summary["payouts"][0]["payout_id"])
    items = session.scalars(sa.select(PayoutItem).where(PayoutItem.payout_id == payout.id)).all()
    assert sorted(i.amount for i in items) == [2_500, 3_000]
    assert_books_balance(session)


def test_manual_payouts_csv_then_mark_paid_in_bulk(
    client: TestClient, session: Session, settings: Settings, program: Program
) -> None:
    ada = make_partner(session, program=program, name="=cmd|' /C calc'!A0", email="ada@x.example")
    bob = make_partner(session, program=program, email="bob@x.example")
    sale(session, settings, ada, 12_345)
    sale(session, settings, ada, 50_000, "JPY")
    sale(session, settings, bob, 999)
    approve_all(session, program)
    session.commit()
    run = client.post("/v1/payouts/run", json={"program_id": program.id})
    assert run.status_code == 201, run.text
    exported = client.get("/v1/payouts/export.csv", params={"program_id": program.id})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted((r["email"], r["amount"], r["currency"]) for r in rows) == [
        ("ada@x.example", "12.35", "USD"),  # 1234.5 -> 1235: the tie goes to the commission
        ("ada@x.example", "5000", "JPY"),
        ("bob@x.example", "1.00", "USD"),
    ]
    assert {r["name"] for r in rows} == {"'=cmd|' /C calc'!A0", "Pat Partner"}
    ids = [r["payout_id"] for r in rows]
    done = client.post("/v1/payouts/mark-paid", json={"ids": ids, "reference": "paypal-B42"})
    assert done.json()["changed"] == 3
    again = client.post(f"/v1/payouts/{ids[0]}/mark-paid", json={})
    assert (again.status_code, again.json()["status"]) == (200, "paid")
    detail = client.get(f"/v1/payouts/{ids[0]}").json()
    assert detail["reference"] == "paypal-B42" and detail["items"]
    paid = session.scalars(sa.select(Commission.status).where(Commission.program_id == program.id))
    assert set(paid) == {"paid"}
    assert (
        client.get("/v1/payouts/export.csv", params={"program_id": program.id}).text.count("\n")
        == 1
    )  # only the header: nothing left to pay
    assert_books_balance(session)


def test_reversing_paid_or_claimed_commissions_is_refused(
    client: TestClient, session: Session, settings: Settings, program: Program
) -> None:
    partner = make_partner(session, program=program)
    paid = only_commission(session, sale(session, settings, partner, 10_000))
    approve_all(session, program)
    run = run_payouts(session, program, "key_test")
    session.commit()
    payout_id = run.summary["payouts"][0]["payout_id"]
    in_payout = client.post(f"/v1/commissions/{paid.id}/reverse", json={"reason": "x"})
    assert (in_payout.status_code, in_payout.json()["code"]) == (409, "in_payout")
    client.post(f"/v1/payouts/{payout_id}/mark-paid", json={})
    refused = client.post(f"/v1/commissions/{paid.id}/reverse", json={"reason": "x"})
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")
    cancel = client.post(f"/v1/payouts/{payout_id}/cancel", json={"reason": "x"})
    assert (cancel.status_code, cancel.json()["code"]) == (409, "invalid_payout_state")
    assert_books_balance(session)


def test_a_cancelled_manual_payout_returns_its_commissions_to_the_balance(
    client: TestClient, session: Session, settings: Settings, program: Program
) -> None:
    partner = make_partner(session, program=program)
    sale(session, settings, partner, 10_000)
    approve_all(session, program)
    session.commit()
    first = client.post("/v1/payouts/run", json={"program_id": program.id}).json()
    payout_id = first["summary"]["payouts"][0]["payout_id"]
    cancelled = client.post(f"/v1/payouts/{payout_id}/cancel", json={"reason": "wrong email"})
    assert (cancelled.json()["status"], cancelled.json()["failure_code"]) == ("failed", "cancelled")
    (balance,) = partner_balances(session, partner.id)
    assert (balance.approved, balance.processing) == (1000, 0)
    second = client.post("/v1/payouts/run", json={"program_id": program.id}).json()
    assert [p["amount"] for p in second["summary"]["payouts"]] == [1000]
    assert_books_balance(session)


def test_partners_see_only_their_own_payouts_and_cannot_run_them(
    client: TestClient, session: Session, settings: Settings, program: Program
) -> None:
    mine, theirs = make_partner(session, program=program), make_partner(session, program=program)
    sale(session, settings, mine, 10_000)
    sale(session, settings, theirs, 10_000)
    approve_all(session, program)
    run_payouts(session, program, "key_test")
    token = create_key(session, kind="secret", scopes=["payouts:read"], partner_id=mine.id).token
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/v1/payouts", headers=auth).json()["data"]
    assert [p["partner_id"] for p in listed] == [mine.id]
    other = session.scalar(sa.select(Payout.id).where(Payout.partner_id == theirs.id))
    assert client.get(f"/v1/payouts/{other}", headers=auth).status_code == 404
    run = client.post("/v1/payouts/run", json={"program_id": program.id}, headers=auth)
    assert (run.status_code, run.json()["code"]) == (403, "partner_key_forbidden")
    assert_books_balance(session)


@pytest.mark.parametrize(
    ("schedule", "now", "expected"),
    [
        ("weekly", T0, datetime(2025, 3, 10, tzinfo=UTC)),
        ("weekly", datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 17, tzinfo=UTC)),
        ("biweekly", T0, datetime(2025, 3, 17, tzinfo=UTC)),  # an even week since 1970-01-05
        ("biweekly", datetime(2025, 3, 17, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC)),
        ("monthly", T0, datetime(2025, 4, 1, tzinfo=UTC)),
        ("monthly", datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
        ("manual", T0, None),
    ],
)
def test_next_scheduled_run(schedule: str, now: datetime, expected: datetime | None) -> None:
    assert next_run_at(schedule, now) == expected


def test_scheduled_runs_are_jobs_enqueued_once_per_period(
    session: Session, sessions: sessionmaker[Session], settings: Settings
) -> None:
    program = make_program(session, holding_days=0, payout_schedule="weekly")
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    sale(session, settings, partner, 10_000)
    approve_all(session, program)
    assert tick(session) == []  # first tick: schedules the next Monday
    assert program.next_payout_at == datetime(2025, 3, 10, tzinfo=UTC)
    clock.freeze(datetime(2025, 3, 10, 0, 1, tzinfo=UTC))
    assert tick(session) == [program.id]
    assert tick(session) == []  # the same period never enqueues twice
    session.commit()
    run_until_idle(sessions)
    payouts = session.scalars(sa.select(Payout).where(Payout.partner_id == partner.id)).all()
    assert [(p.amount, p.actor) for p in payouts] == [(1000, "job:payouts.run")]
    assert_books_balance(session)


def test_two_concurrent_runs_never_claim_the_same_commission(settings: Settings) -> None:
    """Two runs race on separate connections (a real race on PostgreSQL; serialized by BEGIN
    IMMEDIATE on SQLite): every commission ends up in exactly one payout."""
    clock.unfreeze()
    with scratch_database(create_test_database) as (_, sessions):
        with sessions() as setup:
            program = make_program(setup, holding_days=0)
            set_rules(setup, program, percent(1000))
            partners = [make_partner(setup, program=program) for _ in range(8)]
            for i, partner in enumerate(partners * 3):
                sale(setup, settings, partner, 1_000 + i)
            approve_all(setup, program)
            setup.commit()
            program_id = program.id
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with sessions() as own:
                    start.wait()
                    run_payouts(own, own.get_one(Program, program_id), "key_race")
                    own.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with sessions() as check:
            claimed = check.scalars(sa.select(PayoutItem.commission_id)).all()
            assert len(claimed) == len(set(claimed)) == 24
            approved = check.scalar(sa.select(sa.func.sum(Commission.amount)))
            paid_out = check.scalar(sa.select(sa.func.sum(Payout.amount)))
            assert paid_out == approved
            assert check.scalar(sa.select(sa.func.count()).select_from(Payout)) == 8
            assert_books_balance(check)


def test_program_payout_settings(client: TestClient) -> None:
    body = {
        "name": "Acme",
        "currency": "EUR",
        "default_destination_url": "https://acme.example/",
        "holding_days": 14,
        "auto_approve": True,
        "payout_minimums": {"eur": 2500, "USD": 3000},
        "payout_schedule": "monthly",
        "payout_provider": "stripe",
    }
    created = client.post("/v1/programs", json=body)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["payout_minimums"] == {"EUR": 2500, "USD": 3000}
    assert (out["holding_days"], out["payout_schedule"], out["next_payout_at"]) == (
        14,
        "monthly",
        None,
    )
    for bad in (
        {"holding_days": 91},
        {"holding_days": -1},
        {"payout_schedule": "daily"},
        {"payout_provider": "paypal"},
        {"payout_minimums": {"EUR": -1}},
        {"payout_minimums": {"XXX": 1}},
    ):
        response = client.patch(f"/v1/programs/{out['id']}", json=bad)
        assert response.status_code == 422, bad
    patched = client.patch(f"/v1/programs/{out['id']}", json={"payout_schedule": "weekly"})
    assert patched.json()["payout_schedule"] == "weekly"
