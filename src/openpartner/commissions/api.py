"""Commission rules, commissions (partners see their own), the review queue, adjustments."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from openpartner.api.deps import (
    CommissionsRead,
    CommissionsWrite,
    DbSession,
    OwnCommissionsRead,
)
from openpartner.api.pagination import Page, paginate
from openpartner.commissions import review
from openpartner.commissions.models import (
    Adjustment,
    Commission,
    CommissionAudit,
    CommissionRuleVersion,
)
from openpartner.commissions.rulesets import create_version
from openpartner.commissions.schemas import (
    AdjustmentOut,
    ApproveIn,
    BulkApproveIn,
    BulkIn,
    BulkOut,
    CommissionDetail,
    CommissionOut,
    CommissionStatus,
    ReasonIn,
    RuleSetIn,
    RuleSetOut,
)
from openpartner.core.errors import ValidationFailed
from openpartner.core.time import utc_now
from openpartner.ledger.models import LedgerEntry
from openpartner.programs.service import get_program

router = APIRouter(tags=["commissions"])
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]
Id = Annotated[str | None, Query(max_length=32)]


@router.post(
    "/v1/programs/{program_id}/commission-rules", status_code=201, response_model=RuleSetOut
)
def create_rules(
    program_id: str, body: RuleSetIn, session: DbSession, principal: CommissionsWrite
) -> CommissionRuleVersion:
    """A new version of the program's commission rules (the complete set). Events are computed
    with the version in force at their own time."""
    program = get_program(session, principal, program_id)
    return create_version(session, principal, program, body)


@router.get("/v1/programs/{program_id}/commission-rules", response_model=Page[RuleSetOut])
def list_rules(
    program_id: str,
    session: DbSession,
    principal: CommissionsRead,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, object]:
    program = get_program(session, principal, program_id)
    stmt = sa.select(CommissionRuleVersion).where(CommissionRuleVersion.program_id == program.id)
    rows, has_more, next_cursor = paginate(
        session, stmt, CommissionRuleVersion.id, limit=limit, cursor=cursor
    )
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/v1/commissions", response_model=Page[CommissionOut])
def list_commissions(
    session: DbSession,
    principal: OwnCommissionsRead,
    limit: Limit = 50,
    cursor: Cursor = None,
    program_id: Id = None,
    partner_id: Id = None,
    event_id: Id = None,
    payout_id: Id = None,
    status: CommissionStatus | None = None,
    matured: bool | None = None,
) -> dict[str, object]:
    """The review queue is ``?status=pending``: each with its ``matures_at``; ``matured=true``
    keeps those that may be approved now."""
    stmt = sa.select(Commission).where(*principal.filters(Commission))
    for column, value in (
        (Commission.program_id, program_id),
        (Commission.partner_id, partner_id),
        (Commission.event_id, event_id),
        (Commission.payout_id, payout_id),
        (Commission.status, status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if matured is not None:
        now = utc_now()
        stmt = stmt.where(Commission.matures_at <= now if matured else Commission.matures_at > now)
    rows, has_more, next_cursor = paginate(session, stmt, Commission.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/v1/commissions/{commission_id}", response_model=CommissionDetail)
def get_commission(
    commission_id: str, session: DbSession, principal: OwnCommissionsRead
) -> dict[str, Any]:
    """The commission, why it is what it is (rule, base amount), its audit trail, the
    adjustments booked after it was paid, and its ledger history."""
    commission = review.get_commission(session, principal, commission_id)
    trail = session.scalars(
        sa.select(CommissionAudit)
        .where(CommissionAudit.commission_id == commission.id)
        .order_by(CommissionAudit.seq)
    ).all()
    adjustments = session.scalars(
        sa.select(Adjustment)
        .where(Adjustment.commission_id == commission.id)
        .order_by(Adjustment.id)
    ).all()
    ledger = session.scalars(
        sa.select(LedgerEntry)
        .where(LedgerEntry.commission_id == commission.id)
        .order_by(LedgerEntry.seq)
    ).all()
    return {
        **CommissionOut.model_validate(commission).model_dump(),
        "audit": trail,
        "adjustments": adjustments,
        "ledger": ledger,
    }


@router.get("/v1/adjustments", response_model=Page[AdjustmentOut])
def list_adjustments(
    session: DbSession,
    principal: OwnCommissionsRead,
    limit: Limit = 50,
    cursor: Cursor = None,
    partner_id: Id = None,
    unpaid: bool | None = None,
) -> dict[str, object]:
    stmt = sa.select(Adjustment).where(*principal.filters(Adjustment))
    if partner_id is not None:
        stmt = stmt.where(Adjustment.partner_id == partner_id)
    if unpaid is not None:
        stmt = stmt.where(
            Adjustment.payout_id.is_(None) if unpaid else Adjustment.payout_id.is_not(None)
        )
    rows, has_more, next_cursor = paginate(session, stmt, Adjustment.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.post("/v1/commissions/{commission_id}/approve", response_model=CommissionOut)
def approve(
    commission_id: str,
    session: DbSession,
    principal: CommissionsWrite,
    body: ApproveIn | None = None,
) -> Commission:
    """Approve a matured commission (approving it again changes nothing). Before it matures:
    ``409 not_mature``, unless ``{"early": true, "reason": "…"}``; the reason is kept in its
    audit trail and ledger history."""
    body = body or ApproveIn()
    _reason_for_early(body.early, body.reason)
    return review.act(session, principal, commission_id, "approve", body.reason, early=body.early)


@router.post("/v1/commissions/{commission_id}/reverse", response_model=CommissionOut)
def reverse(
    commission_id: str, body: ReasonIn, session: DbSession, principal: CommissionsWrite
) -> Commission:
    return review.act(session, principal, commission_id, "reverse", body.reason)


@router.post("/v1/commissions/{commission_id}/hold", response_model=CommissionOut)
def hold(
    commission_id: str, body: ReasonIn, session: DbSession, principal: CommissionsWrite
) -> Commission:
    """Hold a pending commission for fraud review: it cannot be approved until released."""
    return review.act(session, principal, commission_id, "hold", body.reason)


@router.post("/v1/commissions/{commission_id}/release", response_model=CommissionOut)
def release(commission_id: str, session: DbSession, principal: CommissionsWrite) -> Commission:
    return review.act(session, principal, commission_id, "release")


@router.post("/v1/commissions/approve", response_model=BulkOut)
def approve_many(
    body: BulkApproveIn, session: DbSession, principal: CommissionsWrite
) -> dict[str, Any]:
    """Approve up to 500 commissions; each is answered on its own (an unmatured one is refused
    with ``not_mature`` unless ``early`` is set, with a ``reason``)."""
    _reason_for_early(body.early, body.reason)
    return review.act_in_bulk(
        session, principal, body.ids, "approve", body.reason, early=body.early
    )


@router.post("/v1/commissions/reverse", response_model=BulkOut)
def reverse_many(body: BulkIn, session: DbSession, principal: CommissionsWrite) -> dict[str, Any]:
    return review.act_in_bulk(session, principal, body.ids, "reverse", body.reason)


def _reason_for_early(early: bool, reason: str | None) -> None:
    """Refuse the whole request up front rather than each unmatured commission in it."""
    if early and not reason:
        raise ValidationFailed(
            "A reason is required to approve before the holding period ends.",
            code="reason_required",
            errors=[{"loc": ["body", "reason"], "msg": "required", "type": "reason_required"}],
        )
