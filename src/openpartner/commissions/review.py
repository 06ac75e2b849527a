"""The review queue: approve, reverse, hold and release commissions, one by one or in bulk,
and the auto-approval job.

    pending ──approve (matured, or early with a reason)──► approved ──payout──► paid
    pending | approved ──reverse (reason)──► reversed
    pending ──hold (reason)──► held ──release──► pending
    held ──reverse (reason)──► reversed

Asking for the state a commission is already in changes nothing (idempotent: no entry, no audit
record); anything else outside the diagram is a ``409``. Every change is audited.

Approving before the holding period ends must be asked for (``early``) and explained: the reason
goes to the audit trail (action ``approved_early``) and to the approval's ledger entries
(``memo``). Without ``early`` it is ``409 not_mature``; auto-approval never approves early.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.commissions.models import Commission
from openpartner.commissions.service import audit, refs
from openpartner.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpenPartnerError,
    ValidationFailed,
)
from openpartner.core.time import utc_now
from openpartner.ledger import accounts
from openpartner.ledger.service import move
from openpartner.programs.models import Program
from openpartner.worker.queue import task

Action = Literal["approve", "reverse", "hold", "release"]
AUTO_APPROVE_ACTOR = "job:commissions.auto_approve"


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class NotMature(Conflict):
    """Approval inside the holding period without ``early``."""

    default_code = "not_mature"


class InPayout(Conflict):
    default_code = "in_payout"


def require_merchant(principal: Principal) -> None:
    """Reviewing and paying are the merchant's: a partner's own key may only read."""
    if principal.partner_id is not None:
        raise Forbidden("A partner's key cannot do this.", code="partner_key_forbidden")


def _target(action: Action) -> str:
    return {
        "approve": "approved",
        "reverse": "reversed",
        "hold": "held",
        "release": "pending",
    }[action]


_ALLOWED: dict[Action, tuple[str, ...]] = {
    "approve": ("pending",),
    "reverse": ("pending", "approved", "held"),
    "hold": ("pending",),
    "release": ("held",),
}


def get_commission(
    session: Session, principal: Principal, commission_id: str, *, lock: bool = False
) -> Commission:
    stmt = sa.select(Commission).where(Commission.id == commission_id)
    if lock:
        # Read-then-write of money (PostgreSQL row lock; SQLite writers are serialized).
        stmt = stmt.with_for_update()
    commission = session.scalar(stmt)
    if commission is None:
        raise NotFound(f"Commission {commission_id} not found.")
    principal.check_program(commission.program_id)
    principal.check_partner(commission.partner_id)
    return commission


def transition(
    session: Session,
    commission: Commission,
    action: Action,
    actor: str,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    early: bool = False,
) -> bool:
    """Apply ``action``; False when the commission is already in the target state. ``early``
    lets ``approve`` pass the holding period (with a ``reason``)."""
    now = now or utc_now()
    done = _past(action)
    before = commission.status
    if before == _target(action):
        return False
    if before not in _ALLOWED[action]:
        raise InvalidTransition(
            f"A {before} commission cannot be {_past(action)}.",
            errors=[{"loc": ["status"], "msg": before, "type": "invalid_transition"}],
        )
    if action in ("reverse", "hold") and not reason:
        raise ValidationFailed(f"A reason is required to {action}.", code="reason_required")
    if action == "approve":
        if now < commission.matures_at:
            if not early:
                raise NotMature(
                    f"The holding period ends at {commission.matures_at.isoformat()}; "
                    'to approve it now, say so ("early": true) and give a reason.',
                )
            if not reason:
                raise ValidationFailed(
                    "A reason is required to approve before the holding period ends.",
                    code="reason_required",
                )
            done = "approved_early"
        move(
            session,
            "approval",
            replace(refs(commission, actor), memo=reason),
            commission.amount,
            accounts.PENDING,
            accounts.APPROVED,
        )
        commission.approved_at = now
    elif action == "reverse":
        if commission.payout_id is not None:
            raise InPayout(
                f"Commission {commission.id} is in payout {commission.payout_id}; "
                "a refund after payment becomes an adjustment."
            )
        move(
            session,
            "reversal",
            refs(commission, actor),
            commission.amount,
            accounts.liability_for(before),
            accounts.EXPENSE,
        )
        commission.reversed_at, commission.reversed_by = now, actor
        commission.reason = reason
    elif action == "hold":
        commission.reason = reason
    commission.status = _target(action)
    delta = -commission.amount if action == "reverse" else 0
    audit(session, commission, done, before, actor, reason=reason, delta=delta)
    return True


def _past(action: Action) -> str:
    return {"approve": "approved", "reverse": "reversed", "hold": "held", "release": "released"}[
        action
    ]


def act(
    session: Session,
    principal: Principal,
    commission_id: str,
    action: Action,
    reason: str | None = None,
    *,
    early: bool = False,
) -> Commission:
    require_merchant(principal)
    commission = get_commission(session, principal, commission_id, lock=True)
    transition(session, commission, action, principal.key_id, reason=reason, early=early)
    session.flush()
    return commission


def act_in_bulk(
    session: Session,
    principal: Principal,
    ids: Iterable[str],
    action: Action,
    reason: str | None = None,
    *,
    early: bool = False,
) -> dict[str, Any]:
    """Each commission on its own: changed, unchanged, or refused with a code."""
    require_merchant(principal)
    results: list[dict[str, Any]] = []
    counts = {"changed": 0, "unchanged": 0, "refused": 0}
    for commission_id in dict.fromkeys(ids):
        try:
            commission = get_commission(session, principal, commission_id, lock=True)
            changed = transition(
                session, commission, action, principal.key_id, reason=reason, early=early
            )
            result = "changed" if changed else "unchanged"
            results.append({"id": commission_id, "result": result, "status": commission.status})
        except OpenPartnerError as exc:
            result = "refused"
            results.append(
                {"id": commission_id, "result": result, "code": exc.code, "detail": exc.detail}
            )
        counts[result] += 1
    session.flush()
    return {**counts, "results": results}


def approve_matured(session: Session, now: datetime | None = None) -> int:
    """Approve every pending commission past its holding period in programs that auto-approve."""
    now = now or utc_now()
    due = session.scalars(
        sa.select(Commission)
        .join(Program, Program.id == Commission.program_id)
        .where(
            Program.auto_approve.is_(True),
            Commission.status == "pending",
            Commission.matures_at <= now,
        )
        .order_by(Commission.id)
        # Read-then-write of money: lock the rows being approved (PostgreSQL).
        .with_for_update(of=Commission)
    ).all()
    for commission in due:
        transition(session, commission, "approve", AUTO_APPROVE_ACTOR, now=now)
    session.flush()
    return len(due)


@task("commissions.auto_approve")
def auto_approve_task(session: Session, payload: dict[str, Any]) -> None:
    approve_matured(session)
