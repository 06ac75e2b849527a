"""Commissions from attributed events: each rule type, versions, holding, review, auto-approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.service import create_key
from openpartner.commissions.models import CommissionAudit
from openpartner.core.time import clock
from openpartner.ledger.models import LedgerEntry
from openpartner.ledger.service import partner_balances
from openpartner.payouts.schedule import tick
from openpartner.settings import Settings
from openpartner.worker.queue import run_until_idle
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    assert_books_balance,
    commissions_of,
    flat,
    only_commission,
    percent,
    record,
    refer,
    sale,
    set_rules,
)

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


def test_percent_commission_is_pending_with_its_explanation(
    session: Session, settings: Settings
) -> None:
    program = make_program(session)
    version = set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    event = sale(session, settings, partner, 12_345)
    commission = only_commission(session, event)
    assert (commission.amount, commission.currency, commission.status) == (1235, "USD", "pending")
    assert commission.base_amount == 12_345 and commission.rule_version_id == version.id
    assert commission.rule["rate_bps"] == 1000
    assert commission.matures_at == T0 + timedelta(days=30)
    (balance,) = partner_balances(session, partner.id)
    assert (balance.pending, balance.approved, balance.earned) == (1235, 0, 1235)
    assert_books_balance(session)


def test_lead_rewards_are_flat_in_their_own_currency(session: Session, settings: Settings) -> None:
    program = make_program(session, currency="EUR")
    set_rules(session, program, flat(500, "USD", "lead"), percent(1000))
    partner = make_partner(session, program=program)
    customer = refer(session, partner)
    lead = record(session, settings, program, "lead", customer_id=customer)
    commission = only_commission(session, lead)
    assert (commission.amount, commission.currency, commission.base_amount) == (500, "USD", 0)
    assert_books_balance(session)


def test_a_partner_override_beats_the_program_rule(session: Session, settings: Settings) -> None:
    program = make_program(session)
    regular, star = make_partner(session, program=program), make_partner(session, program=program)
    set_rules(session, program, percent(1000), percent(2500, partner_id=star.id))
    assert only_commission(session, sale(session, settings, regular, 10_000)).amount == 1000
    assert only_commission(session, sale(session, settings, star, 10_000)).amount == 2500
    assert_books_balance(session)


def test_first_only_pays_the_customers_first_sale(session: Session, settings: Settings) -> None:
    program = make_program(session)
    set_rules(session, program, percent(1000, recurrence="first"))
    partner = make_partner(session, program=program)
    first = sale(session, settings, partner, 10_000)
    clock.advance(timedelta(days=3))
    again = sale(session, settings, partner, 10_000, customer_id=first.customer_id)
    assert only_commission(session, first).amount == 1000
    assert commissions_of(session, again) == []
    assert_books_balance(session)


def test_recurring_pays_until_its_maximum_duration(session: Session, settings: Settings) -> None:
    program = make_program(session, attribution_window_days=365)
    set_rules(session, program, percent(1000, max_months=1))
    partner = make_partner(session, program=program)
    first = sale(session, settings, partner, 10_000)
    paid = []
    for days in (20, 40):  # within the first month, then after it
        clock.freeze(T0 + timedelta(days=days))
        event = sale(session, settings, partner, 10_000, customer_id=first.customer_id)
        paid.append(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.event_id == event.id)
            )
        )
    assert paid == [2, 0]  # one accrual (two legs), then nothing
    assert_books_balance(session)


def test_rules_are_versioned_by_the_events_time(session: Session, settings: Settings) -> None:
    program = make_program(session)
    set_rules(session, program, percent(1000), effective_from=T0 - timedelta(days=20))
    set_rules(session, program, percent(2000), effective_from=T0 - timedelta(days=5))
    partner = make_partner(session, program=program)
    before = sale(session, settings, partner, 10_000, at=T0 - timedelta(days=10))
    after = sale(session, settings, partner, 10_000, at=T0 - timedelta(days=1))
    assert only_commission(session, before).amount == 1000
    assert only_commission(session, after).amount == 2000
    assert_books_balance(session)


def test_rules_are_validated(client: TestClient, session: Session) -> None:
    program = make_program(session)
    session.commit()
    url = f"/v1/programs/{program.id}/commission-rules"
    bad = [
        [{"event_type": "lead", "kind": "percent", "rate_bps": 100}],
        [{"event_type": "sale", "kind": "flat"}],
        [{"event_type": "refund", "kind": "flat", "amount": 100}],
        [{"event_type": "sale", "kind": "percent", "rate_bps": 10}] * 2,
        [{"event_type": "sale", "kind": "flat", "amount": "1.5", "currency": "JPY"}],
        [{"event_type": "sale", "kind": "percent", "rate_bps": 10, "partner_id": "ptn_nope"}],
    ]
    for rules in bad:
        response = client.post(url, json={"rules": rules})
        assert response.status_code == 422, rules
    ok = client.post(
        url, json={"rules": [{"event_type": "sale", "kind": "flat", "amount": "5.00"}]}
    )
    assert ok.status_code == 201
    assert ok.json()["rules"][0] | {"amount": 500, "currency": "USD"} == ok.json()["rules"][0]
    assert client.get(url).json()["data"][0]["id"] == ok.json()["id"]


def test_holding_period_gates_approval(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=14)
    set_rules(session, program, percent(1000))
    commission = only_commission(
        session, sale(session, settings, make_partner(session, program=program), 10_000)
    )
    session.commit()
    early = client.post(f"/v1/commissions/{commission.id}/approve")
    assert (early.status_code, early.json()["code"]) == (409, "not_mature")
    queue = client.get("/v1/commissions", params={"status": "pending", "matured": "false"}).json()
    assert [c["matures_at"] for c in queue["data"]] == [
        (T0 + timedelta(days=14)).isoformat().replace("+00:00", "Z")
    ]
    clock.advance(timedelta(days=14))
    approved = client.post(f"/v1/commissions/{commission.id}/approve")
    assert approved.json()["status"] == "approved"
    assert_books_balance(session)


def test_transitions_are_idempotent_and_refused_outside_the_state_machine(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    a = only_commission(session, sale(session, settings, partner, 10_000))
    b = only_commission(session, sale(session, settings, partner, 20_000))
    session.commit()
    url = "/v1/commissions/{}/{}".format

    assert client.post(url(a.id, "approve")).json()["status"] == "approved"
    assert client.post(url(a.id, "approve")).json()["status"] == "approved"  # twice: no-op
    approvals = session.scalar(
        sa.select(sa.func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.commission_id == a.id, LedgerEntry.kind == "approval")
    )
    assert approvals == 2  # one transaction, two legs

    assert client.post(url(a.id, "reverse"), json={}).status_code == 422  # a reason is required
    assert (
        client.post(url(a.id, "reverse"), json={"reason": "fraud"}).json()["status"] == "reversed"
    )
    assert client.post(url(a.id, "reverse"), json={"reason": "again"}).json()["reason"] == "fraud"
    refused = client.post(url(a.id, "approve"))
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_transition")

    assert client.post(url(b.id, "hold"), json={"reason": "review"}).json()["status"] == "held"
    assert client.post(url(b.id, "approve")).json()["code"] == "invalid_transition"
    assert client.post(url(b.id, "release")).json()["status"] == "pending"
    assert client.post(url(b.id, "release")).json()["status"] == "pending"  # again: no-op
    assert client.post(url(a.id, "release")).status_code == 409  # a reversal stands

    trail = client.get(f"/v1/commissions/{a.id}").json()["audit"]
    assert [(t["action"], t["actor"]) for t in trail] == [
        ("accrued", "system:attribution"),
        ("approved", "key_env_admin"),
        ("reversed", "key_env_admin"),
    ]
    assert trail[2]["reason"] == "fraud" and trail[2]["amount_delta"] == -1000
    (balance,) = partner_balances(session, partner.id)
    assert (balance.pending, balance.approved, balance.earned) == (2000, 0, 2000)
    assert_books_balance(session)


def test_bulk_review_answers_each_commission(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    ids = [
        only_commission(session, sale(session, settings, partner, 1000 * n)).id for n in (1, 2, 3)
    ]
    session.commit()
    client.post(f"/v1/commissions/{ids[0]}/approve")
    client.post(f"/v1/commissions/{ids[1]}/reverse", json={"reason": "test"})
    result = client.post("/v1/commissions/approve", json={"ids": [*ids, "com_missing"]}).json()
    assert (result["changed"], result["unchanged"], result["refused"]) == (1, 1, 2)
    assert [r["result"] for r in result["results"]] == [
        "unchanged",
        "refused",
        "changed",
        "refused",
    ]
    assert result["results"][3]["code"] == "not_found"
    reversed_ = client.post("/v1/commissions/reverse", json={"ids": ids, "reason": "chargeback"})
    assert reversed_.json()["changed"] == 2
    assert_books_balance(session)


def test_auto_approval_job_approves_only_matured_commissions(
    session: Session, sessions: sessionmaker[Session], settings: Settings
) -> None:
    program = make_program(session, holding_days=7, auto_approve=True)
    manual = make_program(session, holding_days=7)
    for p in (program, manual):
        set_rules(session, p, percent(1000))
    auto_c = only_commission(
        session, sale(session, settings, make_partner(session, program=program), 10_000)
    )
    manual_c = only_commission(
        session, sale(session, settings, make_partner(session, program=manual), 10_000)
    )
    session.commit()
    tick(session)
    session.commit()
    run_until_idle(sessions)
    session.refresh(auto_c)
    assert auto_c.status == "pending"
    clock.advance(timedelta(days=7))
    tick(session)
    session.commit()
    run_until_idle(sessions)
    session.refresh(auto_c)
    session.refresh(manual_c)
    assert (auto_c.status, manual_c.status) == ("approved", "pending")
    actor = session.scalar(
        sa.select(CommissionAudit.actor).where(
            CommissionAudit.commission_id == auto_c.id, CommissionAudit.action == "approved"
        )
    )
    assert actor == "job:commissions.auto_approve"
    assert_books_balance(session)


def test_partners_read_only_their_own_commissions(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    mine, theirs = make_partner(session, program=program), make_partner(session, program=program)
    own = only_commission(session, sale(session, settings, mine, 10_000))
    other = only_commission(session, sale(session, settings, theirs, 10_000))
    token = create_key(
        session, kind="secret", scopes=["commissions:read"], partner_id=mine.id
    ).token
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/v1/commissions", headers=auth).json()["data"]
    assert [c["id"] for c in listed] == [own.id]
    assert client.get(f"/v1/commissions/{other.id}", headers=auth).status_code == 404
    assert client.get(f"/v1/partners/{theirs.id}/balance", headers=auth).status_code == 404
    balance = client.get(f"/v1/partners/{mine.id}/balance", headers=auth).json()
    assert balance["balances"][0] | {"currency": "USD", "pending": 1000} == balance["balances"][0]
    denied = client.post(f"/v1/commissions/{own.id}/approve", headers=auth)
    assert (denied.status_code, denied.json()["code"]) == (403, "partner_key_forbidden")
    assert_books_balance(session)


def test_a_reversed_commission_keeps_its_amount_and_says_it_no_longer_counts(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    kept = only_commission(session, sale(session, settings, partner, 10_000))
    gone = only_commission(session, sale(session, settings, partner, 20_000))
    session.commit()
    reversed_ = client.post(f"/v1/commissions/{gone.id}/reverse", json={"reason": "fraud"}).json()
    assert (reversed_["status"], reversed_["amount"]) == ("reversed", 2000)
    assert (reversed_["counts"], reversed_["effective_amount"]) == (False, 0)
    detail = client.get(f"/v1/commissions/{gone.id}").json()
    assert (detail["amount"], detail["counts"], detail["effective_amount"]) == (2000, False, 0)
    listed = {c["id"]: c for c in client.get("/v1/commissions").json()["data"]}
    assert (listed[kept.id]["counts"], listed[kept.id]["effective_amount"]) == (True, 1000)
    assert listed[gone.id]["effective_amount"] == 0
    # What counts is what the ledger holds: the partner earned the kept one only.
    (balance,) = partner_balances(session, partner.id)
    assert balance.earned == sum(c["effective_amount"] for c in listed.values()) == 1000


def test_an_event_before_rules_posted_without_effective_from_says_no_rule_applied(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session)
    partner = make_partner(session, program=program)
    customer = refer(session, partner, at=T0 - timedelta(days=3))
    session.commit()
    posted = client.post(
        f"/v1/programs/{program.id}/commission-rules", json={"rules": [percent(1000)]}
    )
    assert posted.status_code == 201, posted.text
    assert datetime.fromisoformat(posted.json()["effective_from"]) == T0  # "now"

    def event(key: str, kind: str, at: datetime, amount: int | None = None) -> dict[str, Any]:
        body = {
            "program_id": program.id,
            "type": kind,
            "customer_id": customer,
            "amount": amount,
            "occurred_at": at.isoformat(),
            "external_id": key,
        }
        created = client.post("/v1/events", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["attributed_to"][0]["partner_id"] == partner.id
        return client.get(f"/v1/events/{created.json()['id']}").json()  # type: ignore[no-any-return]

    (before,) = event("yesterday", "sale", T0 - timedelta(days=1), 10_000)["commissions"]
    assert (before["partner_id"], before["credit"], before["commission_id"]) == (
        partner.id,
        10_000,
        None,
    )
    assert (before["reason"], before["counts"]) == ("no_rule", False)
    assert "take effect at 2025-03-03T09:00:00+00:00" in before["detail"]
    (lead,) = event("lead", "lead", T0)["commissions"]
    assert lead["reason"] == "no_rule" and "'lead'" in lead["detail"]
    (after,) = event("today", "sale", T0, 10_000)["commissions"]
    assert (after["amount"], after["currency"], after["status"], after["counts"]) == (
        1000,
        "USD",
        "pending",
        True,
    )
    assert after["commission_id"] is not None and after["reason"] is None
