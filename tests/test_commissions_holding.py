"""Holding period and approval: a commission matures with its event under the rules in force at
the event's time, whenever it is created; an operator may approve early, with a reason kept in
the audit trail and the ledger; auto-approval waits for maturity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.replay import replay
from openpartner.commissions.models import Commission, CommissionAudit
from openpartner.commissions.review import approve_matured
from openpartner.core.time import clock
from openpartner.events.models import Event
from openpartner.identity.service import bind
from openpartner.ledger.models import LedgerEntry
from openpartner.ledger.service import partner_balances
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import (
    assert_books_balance,
    commissions_of,
    only_commission,
    percent,
    record,
    sale,
    set_rules,
)

T0 = datetime(2025, 6, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


def _click(session: Session, partner: Partner, at: datetime) -> str:
    return make_click(session, link=make_link(session, partner=partner), at=at).id


def _maturities(session: Session, event: Event) -> dict[str, datetime]:
    return {c.partner_id: c.matures_at for c in commissions_of(session, event)}


def test_partner_added_by_replay_after_holding_days_change_matures_with_the_event(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=30)
    set_rules(session, program, percent(1000))
    a = make_partner(session, program=program, name="A")
    b = make_partner(session, program=program, name="B")
    for partner, days in ((a, 3), (b, 1)):
        bind(
            session,
            program,
            customer_id="c1",
            click_id=_click(session, partner, T0 - timedelta(days=days)),
        )
    event = record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    assert _maturities(session, event) == {b.id: T0 + timedelta(days=30)}  # last click
    session.commit()

    changed = client.patch(f"/v1/programs/{program.id}", json={"holding_days": 7})
    assert changed.json()["holding_days"] == 7
    clock.advance(timedelta(days=2))
    session.expire_all()  # read the program as the API left it
    assert session.get_one(Program, program.id).holding_days == 7
    replay(session, program.id, model="linear", dry_run=False)

    assert _maturities(session, event) == {
        a.id: T0 + timedelta(days=30),
        b.id: T0 + timedelta(days=30),
    }
    assert_books_balance(session)


def test_partner_added_by_late_identify_after_holding_days_change_matures_with_the_event(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=30, attribution_model="linear")
    set_rules(session, program, percent(1000))
    a = make_partner(session, program=program, name="A")
    b = make_partner(session, program=program, name="B")
    late_click = _click(session, b, T0 - timedelta(days=1))
    session.commit()
    body = {"program_id": program.id, "customer_id": "c1"}
    assert (
        client.post(
            "/v1/identify", json={**body, "click_id": _click(session, a, T0 - timedelta(days=3))}
        ).status_code
        == 200
    )
    event = record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    session.commit()
    assert _maturities(session, event) == {a.id: T0 + timedelta(days=30)}

    client.patch(f"/v1/programs/{program.id}", json={"holding_days": 0})
    clock.advance(timedelta(days=1))
    identified = client.post("/v1/identify", json={**body, "click_id": late_click})
    assert identified.json()["attributed_events"] == 1

    assert _maturities(session, event) == {
        a.id: T0 + timedelta(days=30),
        b.id: T0 + timedelta(days=30),
    }
    assert_books_balance(session)


def test_holding_period_is_the_rule_versions_in_force_at_the_events_time(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=30)
    set_rules(session, program, percent(1000), effective_from=T0 - timedelta(days=20))
    session.commit()
    url = f"/v1/programs/{program.id}/commission-rules"
    later = client.post(
        url,
        json={
            "rules": [{"event_type": "sale", "kind": "percent", "rate_bps": 1000}],
            "holding_days": 7,
            "effective_from": (T0 - timedelta(days=5)).isoformat(),
        },
    )
    assert later.status_code == 201 and later.json()["holding_days"] == 7
    partner = make_partner(session, program=program)
    before = sale(session, settings, partner, 10_000, at=T0 - timedelta(days=10))
    after = sale(session, settings, partner, 10_000, at=T0 - timedelta(days=1))
    assert only_commission(session, before).matures_at == T0 + timedelta(days=20)
    assert only_commission(session, after).matures_at == T0 + timedelta(days=6)
    listed = client.get(url).json()["data"]
    assert sorted(v["holding_days"] for v in listed) == [7, 30]


def test_a_rule_version_posted_without_a_holding_period_takes_the_programs(
    client: TestClient, session: Session
) -> None:
    program = make_program(session, holding_days=30)
    session.commit()
    client.patch(f"/v1/programs/{program.id}", json={"holding_days": 14})
    posted = client.post(
        f"/v1/programs/{program.id}/commission-rules",
        json={"rules": [{"event_type": "sale", "kind": "percent", "rate_bps": 1000}]},
    )
    assert posted.json()["holding_days"] == 14
    too_long = client.post(
        f"/v1/programs/{program.id}/commission-rules", json={"rules": [], "holding_days": 91}
    )
    assert too_long.status_code == 422


def _pending(session: Session, settings: Settings, *, holding_days: int = 30) -> Commission:
    program = make_program(session, holding_days=holding_days)
    set_rules(session, program, percent(1000))
    commission = only_commission(
        session, sale(session, settings, make_partner(session, program=program), 10_000)
    )
    session.commit()
    return commission


def test_early_approval_keeps_its_reason_in_the_audit_trail_and_ledger_history(
    client: TestClient, session: Session, settings: Settings
) -> None:
    commission = _pending(session, settings)
    approved = client.post(
        f"/v1/commissions/{commission.id}/approve",
        json={"early": True, "reason": "Trusted partner, trial run"},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["matures_at"] == "2025-07-02T12:00:00Z"  # unchanged: still a fact

    detail = client.get(f"/v1/commissions/{commission.id}").json()
    assert [(t["action"], t["actor"], t["reason"]) for t in detail["audit"]] == [
        ("accrued", "system:attribution", None),
        ("approved_early", "key_env_admin", "Trusted partner, trial run"),
    ]
    approval = [e for e in detail["ledger"] if e["kind"] == "approval"]
    assert {(e["account"], e["amount"], e["memo"]) for e in approval} == {
        ("partner_pending", 1000, "Trusted partner, trial run"),
        ("partner_approved", -1000, "Trusted partner, trial run"),
    }
    assert [e["memo"] for e in detail["ledger"] if e["kind"] == "accrual"] == [None, None]
    (balance,) = partner_balances(session, commission.partner_id)
    assert (balance.pending, balance.approved) == (0, 1000)
    assert_books_balance(session)


def test_approving_an_unmatured_commission_without_early_is_refused_not_mature(
    client: TestClient, session: Session, settings: Settings
) -> None:
    commission = _pending(session, settings)
    url = f"/v1/commissions/{commission.id}/approve"
    for body in (None, {}, {"reason": "looks fine"}, {"early": False, "reason": "looks fine"}):
        refused = client.post(url, json=body)
        assert (refused.status_code, refused.json()["code"]) == (409, "not_mature"), body
        assert "2025-07-02T12:00:00+00:00" in refused.json()["detail"]
    no_reason = client.post(url, json={"early": True})
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "reason_required")
    session.expire_all()
    assert session.get_one(Commission, commission.id).status == "pending"
    moved = session.scalar(
        sa.select(sa.func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.commission_id == commission.id, LedgerEntry.kind == "approval")
    )
    trail = session.scalars(
        sa.select(CommissionAudit.action).where(CommissionAudit.commission_id == commission.id)
    ).all()
    assert (moved, trail) == (0, ["accrued"])


def test_bulk_approval_refuses_unmatured_ones_unless_early_with_a_reason(
    client: TestClient, session: Session, settings: Settings
) -> None:
    unmatured = _pending(session, settings)
    matured = _pending(session, settings, holding_days=0)
    ids = [unmatured.id, matured.id]
    plain = client.post("/v1/commissions/approve", json={"ids": ids}).json()
    assert [(r["result"], r.get("code")) for r in plain["results"]] == [
        ("refused", "not_mature"),
        ("changed", None),
    ]
    no_reason = client.post("/v1/commissions/approve", json={"ids": ids, "early": True})
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "reason_required")
    early = client.post(
        "/v1/commissions/approve", json={"ids": ids, "early": True, "reason": "Quarter close"}
    ).json()
    assert [r["result"] for r in early["results"]] == ["changed", "unchanged"]
    trail = client.get(f"/v1/commissions/{unmatured.id}").json()["audit"]
    assert (trail[-1]["action"], trail[-1]["reason"]) == ("approved_early", "Quarter close")
    assert_books_balance(session)


def test_auto_approval_approves_only_matured_commissions_never_early(
    session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=7, auto_approve=True)
    set_rules(session, program, percent(1000), effective_from=T0 - timedelta(days=30))
    partner = make_partner(session, program=program)
    older = only_commission(
        session, sale(session, settings, partner, 10_000, at=T0 - timedelta(days=8))
    )
    newer = only_commission(session, sale(session, settings, partner, 10_000))
    assert approve_matured(session) == 1
    assert (older.status, newer.status) == ("approved", "pending")
    actions = session.execute(
        sa.select(
            CommissionAudit.commission_id, CommissionAudit.action, CommissionAudit.reason
        ).where(CommissionAudit.action != "accrued")
    ).all()
    assert [tuple(a) for a in actions] == [(older.id, "approved", None)]
    assert session.scalars(
        sa.select(LedgerEntry.memo).where(LedgerEntry.kind == "approval")
    ).all() == [None, None]
    assert approve_matured(session, now=T0 + timedelta(days=7)) == 1
    assert newer.status == "approved"
    assert_books_balance(session)
