"""Stripe Connect payouts against the local Stripe server: onboarding, transfers, and every fault
that could pay twice or lose money. In each, money paid out equals money approved, to the unit."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.commissions.models import Commission
from openpartner.core.time import clock
from openpartner.integrations.stripe.connect import mirror
from openpartner.ledger.service import partner_balances
from openpartner.partners.models import Partner
from openpartner.payouts.models import ConnectAccount, Payout
from openpartner.payouts.schedule import tick
from openpartner.payouts.service import run_payouts
from openpartner.programs.models import Program
from openpartner.settings import Settings, get_settings
from openpartner.worker.models import Job
from openpartner.worker.queue import LEASE, run_until_idle
from tests.conftest import create_test_database
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    approve_all,
    assert_books_balance,
    percent,
    sale,
    scratch_database,
    set_rules,
)
from tests.stripe_server import StripeServer

WEBHOOK = "/v1/integrations/stripe/webhook"


@pytest.fixture
def settings(settings: Settings, stripe_server: StripeServer) -> Settings:
    return stripe_server.configure(settings, timeout=0.5)


@pytest.fixture(autouse=True)
def stripe_env(monkeypatch: pytest.MonkeyPatch, stripe_server: StripeServer) -> Iterator[None]:
    """The worker reads Stripe's settings from the environment, as in production."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", stripe_server.secret_key)
    monkeypatch.setenv("STRIPE_API_BASE", stripe_server.url)
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def stripe_program(session: Session) -> Program:
    program = make_program(session, holding_days=0, payout_provider="stripe")
    set_rules(session, program, percent(1000))
    return program


def connected(session: Session, stripe_server: StripeServer, program: Program) -> Partner:
    """A partner whose Stripe account has finished onboarding."""
    partner = make_partner(session, program=program)
    account = stripe_server.create_account(ready=True)
    row = ConnectAccount(
        partner_id=partner.id, program_id=program.id, stripe_account_id=account["id"]
    )
    mirror(row, account)
    session.add(row)
    session.flush()
    return partner


def approved_to_pay(session: Session, settings: Settings, partner: Partner, *amounts: int) -> int:
    for amount in amounts:
        sale(session, settings, partner, amount)
    approve_all(session, session.get_one(Program, partner.program_id))
    return sum(
        session.scalars(sa.select(Commission.amount).where(Commission.partner_id == partner.id))
    )


def transfer_posts(stripe_server: StripeServer) -> list[str | None]:
    """The idempotency key of every transfer creation Stripe received."""
    return [
        r.idempotency_key
        for r in stripe_server.requests
        if (r.method, r.path) == ("POST", "/v1/transfers")
    ]


def net_transferred(stripe_server: StripeServer) -> int:
    return sum(t["amount"] - t["amount_reversed"] for t in stripe_server.transfers())


def _payout(session: Session, payout_id: str) -> Payout:
    session.expire_all()
    return session.get_one(Payout, payout_id)


def test_connect_onboarding_and_readiness_from_account_updated(
    client: TestClient,
    session: Session,
    sessions: sessionmaker[Session],
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = make_partner(session, program=program)
    session.commit()
    body = {"return_url": "https://acme.example/done", "refresh_url": "https://acme.example/again"}
    first = client.post(f"/v1/partners/{partner.id}/connect", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["ready"] is False and first.json()["onboarding_url"].startswith("http")
    again = client.post(f"/v1/partners/{partner.id}/connect", json=body).json()
    assert again["stripe_account_id"] == first.json()["stripe_account_id"]
    assert len(stripe_server.accounts()) == 1

    event = stripe_server.mark_account_ready(first.json()["stripe_account_id"])
    assert stripe_server.deliver(event, client, WEBHOOK).status_code == 200
    run_until_idle(sessions)
    session.expire_all()
    assert session.get_one(ConnectAccount, partner.id).transfers_active is True


def test_a_stripe_payout_is_one_transfer_grouped_by_payout_id(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    unready = make_partner(session, program=program)
    approved = approved_to_pay(session, settings, partner, 10_000, 5_555)
    approved_to_pay(session, settings, unready, 10_000)
    run = run_payouts(session, program, "key_test")
    assert run.summary["carried"] == [
        {"partner_id": unready.id, "currency": "USD", "amount": 1000, "reason": "not_connected"}
    ]
    payout_id = run.summary["payouts"][0]["payout_id"]
    assert session.get_one(Payout, payout_id).status == "processing"  # the committed intent
    session.commit()
    run_until_idle(sessions)

    (transfer,) = stripe_server.transfers()
    payout = _payout(session, payout_id)
    assert (payout.status, payout.transfer_id) == ("paid", transfer["id"])
    assert (transfer["transfer_group"], transfer["amount"], transfer["currency"]) == (
        payout_id,
        approved,
        "usd",
    )
    assert transfer_posts(stripe_server) == [f"openpartner-payout-{payout_id}"]
    session.add(Job(id="job_again", kind="payouts.transfer", payload={"payout_id": payout_id}))
    session.commit()
    run_until_idle(sessions)  # running the job again never pays again
    assert len(stripe_server.transfers()) == 1
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)


def test_lost_response_is_reconciled_by_transfer_group_without_a_second_transfer(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 40_000)
    payout_id = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.commit()
    stripe_server.fail_next("timeout_after_create", path="/v1/transfers", hold_seconds=5)
    run_until_idle(sessions)
    assert len(stripe_server.transfers()) == 1  # Stripe made it, we never heard back
    assert _payout(session, payout_id).status == "processing"  # so nothing is released
    clock.advance(timedelta(seconds=5))
    run_until_idle(sessions)
    payout = _payout(session, payout_id)
    assert (payout.status, payout.transfer_id) == ("paid", stripe_server.transfers()[0]["id"])
    assert len(transfer_posts(stripe_server)) == 1  # settled from the list, not a new call
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)


def test_429_is_retried_with_the_same_key_then_succeeds(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 25_000)
    payout_id = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.commit()
    stripe_server.fail_next("http_429", path="/v1/transfers", retry_after=1)
    run_until_idle(sessions)
    assert _payout(session, payout_id).status == "processing" and stripe_server.transfers() == []
    clock.advance(timedelta(seconds=3))
    run_until_idle(sessions)
    assert _payout(session, payout_id).status == "paid"
    key = f"openpartner-payout-{payout_id}"
    assert transfer_posts(stripe_server) == [key, key]
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)


def test_a_permanent_error_releases_the_commissions_for_the_next_run(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 10_000, 20_000)
    first = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.commit()
    stripe_server.fail_next("permanent_error", path="/v1/transfers", code="account_invalid")
    run_until_idle(sessions)
    failed = _payout(session, first)
    assert (failed.status, failed.failure_code) == ("failed", "account_invalid")
    assert stripe_server.transfers() == []
    (balance,) = partner_balances(session, partner.id)
    assert (balance.approved, balance.processing, balance.paid) == (approved, 0, 0)
    assert_books_balance(session)

    second = run_payouts(session, program, "key_test").summary["payouts"][0]
    assert second["amount"] == approved and second["payout_id"] != first
    session.commit()
    run_until_idle(sessions)
    assert _payout(session, second["payout_id"]).status == "paid"
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)


def test_transfer_reversed_fails_the_payout_and_restores_the_balance(
    client: TestClient,
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 10_000)
    payout_id = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.commit()
    run_until_idle(sessions)
    transfer_id = _payout(session, payout_id).transfer_id
    assert transfer_id is not None

    event = stripe_server.reverse_transfer(transfer_id)
    stripe_server.deliver(event, client, WEBHOOK)
    stripe_server.deliver(event, client, WEBHOOK)  # redelivered: changes nothing
    run_until_idle(sessions)
    payout = _payout(session, payout_id)
    assert (payout.status, payout.failure_code) == ("failed", "transfer_reversed")
    (balance,) = partner_balances(session, partner.id)
    assert (balance.approved, balance.paid) == (approved, 0)
    assert set(session.scalars(sa.select(Commission.status))) == {"approved"}
    assert_books_balance(session)

    run_payouts(session, program, "key_test")
    session.commit()
    run_until_idle(sessions)
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)


def test_partial_then_full_reversal_returns_exactly_what_came_back(
    client: TestClient,
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 10_000)
    payout_id = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.commit()
    run_until_idle(sessions)
    transfer_id = _payout(session, payout_id).transfer_id or ""

    stripe_server.deliver(stripe_server.reverse_transfer(transfer_id, 300), client, WEBHOOK)
    run_until_idle(sessions)
    (balance,) = partner_balances(session, partner.id)
    assert (_payout(session, payout_id).status, balance.approved, balance.paid) == (
        "paid",
        300,
        700,
    )
    assert_books_balance(session)

    stripe_server.deliver(stripe_server.reverse_transfer(transfer_id), client, WEBHOOK)
    run_until_idle(sessions)
    (balance,) = partner_balances(session, partner.id)
    assert (_payout(session, payout_id).status, balance.approved, balance.paid) == (
        "failed",
        approved,
        0,
    )
    assert_books_balance(session)


@pytest.mark.slow
def test_worker_killed_after_the_transfer_before_commit_pays_exactly_once(
    settings: Settings, stripe_server: StripeServer
) -> None:
    """A real worker process makes the transfer, never hears back, and is SIGKILLed before it
    can commit anything. On restart the payout settles from Stripe's record: one transfer."""
    with scratch_database(create_test_database) as (url, sessions):
        with sessions() as setup:
            program = stripe_program(setup)
            partner = connected(setup, stripe_server, program)
            approved = approved_to_pay(setup, settings, partner, 12_345, 67_890)
            run = run_payouts(setup, program, "key_test")
            payout_id = run.summary["payouts"][0]["payout_id"]
            setup.commit()
        stripe_server.fail_next("timeout_after_create", path="/v1/transfers", hold_seconds=60)
        env = {**os.environ, "DATABASE_URL": url, "STRIPE_TIMEOUT_SECONDS": "60"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "openpartner", "worker", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not stripe_server.transfers() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(stripe_server.transfers()) == 1
        finally:
            worker.kill()  # SIGKILL: no cleanup, no commit
            worker.wait()
        with sessions() as check:
            payout = check.get_one(Payout, payout_id)
            assert (payout.status, payout.transfer_id) == ("processing", None)

        assert run_until_idle(sessions) == 0  # the dead worker's lease still holds the job
        clock.advance(LEASE + timedelta(seconds=1))
        assert run_until_idle(sessions) == 1
        with sessions() as check:
            payout = check.get_one(Payout, payout_id)
            (transfer,) = stripe_server.transfers()
            assert (payout.status, payout.transfer_id) == ("paid", transfer["id"])
            assert len(transfer_posts(stripe_server)) == 1
            assert transfer["amount"] == approved == payout.amount
            assert_books_balance(check)


def _assert_not_locked(url: str, sessions: sessionmaker[Session], payout_id: str) -> None:
    """Fail at once, rather than wait, if a transaction holds what the transfer job touches."""
    if url.startswith("sqlite"):
        raw = sqlite3.connect(
            sa.engine.make_url(url).database or "", timeout=0, isolation_level=None
        )
        try:
            raw.execute("BEGIN IMMEDIATE")  # the database's one write lock: free?
            raw.execute("ROLLBACK")
        finally:
            raw.close()
        return
    with sessions() as other:
        locked = sa.select(Payout).where(Payout.id == payout_id).with_for_update(nowait=True)
        assert other.scalars(locked).one().status == "processing"
        other.rollback()


@pytest.mark.slow
def test_no_transaction_is_held_while_stripe_is_called(
    settings: Settings, stripe_server: StripeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transfer waiting on Stripe holds no lock: on SQLite a transaction would be the whole
    database's write lock (every API write would queue behind the network call); on PostgreSQL
    the payout row stays free. When the call ends without an answer, the retry settles it."""
    monkeypatch.setenv("STRIPE_TIMEOUT_SECONDS", "30")
    get_settings.cache_clear()
    with scratch_database(create_test_database) as (url, sessions):
        with sessions() as setup:
            program = stripe_program(setup)
            partner = connected(setup, stripe_server, program)
            approved = approved_to_pay(setup, settings, partner, 31_000)
            payout_id = run_payouts(setup, program, "key_test").summary["payouts"][0]["payout_id"]
            setup.commit()
        stripe_server.fail_next("timeout_after_create", path="/v1/transfers", hold_seconds=30)
        worker = threading.Thread(target=run_until_idle, args=(sessions,))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not stripe_server.transfers() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker.is_alive() and len(stripe_server.transfers()) == 1  # call in flight
            _assert_not_locked(url, sessions, payout_id)
        finally:
            stripe_server.faults.clear()  # the held response ends without an answer
            worker.join()
        clock.advance(timedelta(seconds=5))  # past the retry's backoff
        assert run_until_idle(sessions) == 1
        with sessions() as check:
            payout = check.get_one(Payout, payout_id)
            assert (payout.status, payout.amount) == ("paid", approved)
            assert len(transfer_posts(stripe_server)) == 1
            assert_books_balance(check)


def test_a_payout_whose_job_gave_up_is_requeued_by_the_scheduler(
    session: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    stripe_server: StripeServer,
) -> None:
    program = stripe_program(session)
    partner = connected(session, stripe_server, program)
    approved = approved_to_pay(session, settings, partner, 10_000)
    payout_id = run_payouts(session, program, "key_test").summary["payouts"][0]["payout_id"]
    session.execute(sa.update(Job).values(status="failed"))  # Stripe was down for hours
    session.commit()
    assert run_until_idle(sessions) == 0
    tick(session)
    tick(session)  # one job per payout, however often the scheduler ticks
    session.commit()
    assert run_until_idle(sessions) == 1
    assert _payout(session, payout_id).status == "paid"
    assert net_transferred(stripe_server) == approved
    assert_books_balance(session)
