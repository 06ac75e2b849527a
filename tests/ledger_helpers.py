"""Shared building blocks for the commission, ledger and payout tests: rules, attributed events,
and the books check every scenario ends with (the code behind ``openpartner ledger check``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from openpartner.commissions.models import Commission, CommissionRuleVersion
from openpartner.commissions.review import transition
from openpartner.commissions.rulesets import create_version
from openpartner.commissions.schemas import RuleSetIn
from openpartner.core.time import utc_now
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.events.models import Event
from openpartner.events.schemas import EventIn
from openpartner.events.service import ingest
from openpartner.identity.service import bind
from openpartner.ledger.check import check_books
from openpartner.partners.models import Partner
from openpartner.payouts.models import Payout
from openpartner.payouts.service import mark_paid, run_payouts
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import ADMIN, make_click, make_link


def assert_books_balance(session: Session) -> None:
    """The ledger check after every scenario: any problem fails the test with its details."""
    session.flush()
    session.expire_all()  # read what the API and jobs committed, not this session's copies
    report = check_books(session)
    assert report.problems == [], "\n".join(f"{p.code}: {p.detail}" for p in report.problems)


def set_rules(
    session: Session,
    program: Program,
    *rules: dict[str, Any],
    effective_from: datetime | None = None,
) -> CommissionRuleVersion:
    body = RuleSetIn.model_validate(
        {"rules": list(rules), **({"effective_from": effective_from} if effective_from else {})}
    )
    return create_version(session, ADMIN, program, body)


def percent(rate_bps: int, event_type: str = "sale", **more: Any) -> dict[str, Any]:
    return {"event_type": event_type, "kind": "percent", "rate_bps": rate_bps, **more}


def flat(amount: int, currency: str, event_type: str = "sale", **more: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "kind": "flat",
        "amount": amount,
        "currency": currency,
        **more,
    }


def refer(
    session: Session, partner: Partner, customer_id: str | None = None, at: datetime | None = None
) -> str:
    """The partner's link is clicked and the click is bound to a customer; returns the id."""
    customer_id = customer_id or f"cus_{secrets.token_hex(4)}"
    link = make_link(session, partner=partner)
    click = make_click(session, link=link, at=at)
    program = session.get_one(Program, partner.program_id)
    bind(session, program, customer_id=customer_id, click_id=click.id)
    return customer_id


def record(
    session: Session,
    settings: Settings,
    program: Program,
    type: str,
    *,
    customer_id: str,
    amount: int | None = None,
    currency: str | None = None,
    at: datetime | None = None,
    refund_of: str | None = None,
) -> Event:
    """An event ingested like ``POST /v1/events`` (attributed, commissions synced)."""
    body = EventIn.model_validate(
        {
            "type": type,
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "occurred_at": at or utc_now(),
            "refund_of": refund_of,
        }
    )
    done = ingest(session, program, body, f"ext-{secrets.token_hex(6)}", settings)
    return session.scalars(sa.select(Event).where(Event.id == done.response["id"])).one()


def sale(
    session: Session,
    settings: Settings,
    partner: Partner,
    amount: int,
    currency: str | None = None,
    *,
    customer_id: str | None = None,
    at: datetime | None = None,
) -> Event:
    """A sale by a customer the partner referred (a new customer unless one is given)."""
    program = session.get_one(Program, partner.program_id)
    customer_id = customer_id or refer(session, partner, at=at)
    return record(
        session,
        settings,
        program,
        "sale",
        customer_id=customer_id,
        amount=amount,
        currency=currency,
        at=at,
    )


def refund(session: Session, settings: Settings, of: Event, amount: int | None = None) -> Event:
    program = session.get_one(Program, of.program_id)
    assert of.customer_id is not None
    return record(
        session,
        settings,
        program,
        "refund",
        customer_id=of.customer_id,
        amount=amount,
        refund_of=of.id,
    )


def commissions_of(session: Session, event: Event) -> list[Commission]:
    return list(
        session.scalars(
            sa.select(Commission)
            .where(Commission.event_id == event.id)
            .order_by(Commission.partner_id)
            .execution_options(populate_existing=True)
        )
    )


def only_commission(session: Session, event: Event) -> Commission:
    (commission,) = commissions_of(session, event)
    return commission


@contextmanager
def scratch_database(create: Any) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """A migrated throwaway database that other threads and processes can reach (the
    per-test rollback harness cannot be shared); ``create`` is conftest's
    ``create_test_database``."""
    url, drop = create()
    engine = create_engine(url)
    upgrade(engine)
    try:
        yield url, sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        engine.dispose()
        drop()


def approve_all(session: Session, program: Program) -> None:
    """The merchant approves every matured pending commission of the program."""
    pending = session.scalars(
        sa.select(Commission)
        .where(Commission.program_id == program.id, Commission.status == "pending")
        .order_by(Commission.id)
    )
    for commission in pending:
        transition(session, commission, "approve", "key_test")
    session.flush()


def pay_all(session: Session, program: Program) -> list[Payout]:
    """Approve, run a manual payout, and mark every payout of the run paid."""
    approve_all(session, program)
    run = run_payouts(session, program, "key_test", provider="manual")
    payouts = [session.get_one(Payout, p["payout_id"]) for p in run.summary["payouts"]]
    for payout in payouts:
        mark_paid(session, payout, "key_test", reference="batch-1")
    return payouts
