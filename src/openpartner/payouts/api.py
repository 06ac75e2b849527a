"""Payout runs, payouts, manual mass-pay, Stripe Connect onboarding, balances."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from openpartner.api.deps import (
    CommissionsRead,
    DbSession,
    OwnCommissionsRead,
    OwnPayoutsRead,
    PayoutsRead,
    PayoutsWrite,
)
from openpartner.api.pagination import Page, paginate
from openpartner.commissions.schemas import BulkOut
from openpartner.integrations.stripe.connect import connect_partner
from openpartner.ledger.service import partner_balances, program_balances
from openpartner.partners.service import get_partner
from openpartner.payouts import service
from openpartner.payouts.export import manual_payouts_csv
from openpartner.payouts.models import Payout, PayoutItem, PayoutRun
from openpartner.payouts.schemas import (
    BalancesOut,
    BulkMarkPaidIn,
    CancelIn,
    ConnectIn,
    ConnectOut,
    MarkPaidIn,
    PayoutDetail,
    PayoutOut,
    PayoutStatus,
    RunIn,
    RunOut,
)
from openpartner.programs.service import get_program, program_for

router = APIRouter(tags=["payouts"])
Id = Annotated[str | None, Query(max_length=32)]


@router.post("/v1/payouts/run", status_code=201, response_model=RunOut)
def run_payouts(body: RunIn, session: DbSession, principal: PayoutsWrite) -> PayoutRun:
    """Pay every approved balance at or above the program's minimum, per partner and
    currency, with the program's provider; smaller balances are carried to the next run."""
    program = program_for(session, principal, body.program_id)
    return service.run_payouts(session, program, principal.key_id)


@router.get("/v1/payouts", response_model=Page[PayoutOut])
def list_payouts(
    session: DbSession,
    principal: OwnPayoutsRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    program_id: Id = None,
    partner_id: Id = None,
    run_id: Id = None,
    status: PayoutStatus | None = None,
) -> dict[str, object]:
    stmt = sa.select(Payout).where(*principal.filters(Payout))
    for column, value in (
        (Payout.program_id, program_id),
        (Payout.partner_id, partner_id),
        (Payout.run_id, run_id),
        (Payout.status, status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    rows, has_more, next_cursor = paginate(session, stmt, Payout.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/v1/payouts/export.csv", response_class=Response)
def export_manual_payouts(
    session: DbSession, principal: PayoutsRead, program_id: Id = None, run_id: Id = None
) -> Response:
    """Pending manual payouts as CSV for a mass-pay tool (PayPal Payouts, Wise batch)."""
    program = program_for(session, principal, program_id)
    body = manual_payouts_csv(session, program.id, run_id=run_id)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="payouts-{program.id}.csv"'},
    )


@router.post("/v1/payouts/mark-paid", response_model=BulkOut)
def mark_paid_in_bulk(
    body: BulkMarkPaidIn, session: DbSession, principal: PayoutsWrite
) -> dict[str, Any]:
    return service.mark_paid_in_bulk(session, principal, body.ids, body.reference)


@router.get("/v1/payouts/{payout_id}", response_model=PayoutDetail)
def get_payout(payout_id: str, session: DbSession, principal: OwnPayoutsRead) -> dict[str, Any]:
    payout = service.get_payout(session, principal, payout_id)
    items = session.scalars(
        sa.select(PayoutItem).where(PayoutItem.payout_id == payout.id).order_by(PayoutItem.seq)
    ).all()
    return {**PayoutOut.model_validate(payout).model_dump(), "items": items}


@router.post("/v1/payouts/{payout_id}/mark-paid", response_model=PayoutOut)
def mark_paid(
    payout_id: str, body: MarkPaidIn, session: DbSession, principal: PayoutsWrite
) -> Payout:
    """A manual payout was sent (idempotent: marking it again changes nothing)."""
    payout, _ = service.mark_paid_manually(session, principal, payout_id, body.reference)
    return payout


@router.post("/v1/payouts/{payout_id}/cancel", response_model=PayoutOut)
def cancel(payout_id: str, body: CancelIn, session: DbSession, principal: PayoutsWrite) -> Payout:
    """A manual payout will not be sent: its commissions return to the partner's balance."""
    return service.cancel_manual(session, principal, payout_id, body.reason)


@router.post("/v1/partners/{partner_id}/connect", response_model=ConnectOut)
def connect(
    partner_id: str,
    body: ConnectIn,
    request: Request,
    session: DbSession,
    principal: PayoutsWrite,
) -> dict[str, Any]:
    """Onboard the partner to Stripe Connect: creates the connected account once and returns a
    fresh onboarding link. Readiness follows from Stripe's ``account.updated`` webhooks."""
    partner = get_partner(session, principal, partner_id)
    account, url = connect_partner(
        session,
        request.app.state.settings,
        partner,
        return_url=body.return_url,
        refresh_url=body.refresh_url,
    )
    return {
        "partner_id": partner.id,
        "stripe_account_id": account.stripe_account_id,
        "ready": account.ready,
        "onboarding_url": url,
    }


@router.get("/v1/partners/{partner_id}/balance", response_model=BalancesOut)
def partner_balance(
    partner_id: str, session: DbSession, principal: OwnCommissionsRead
) -> dict[str, Any]:
    """The partner's money per currency, summed from the ledger."""
    partner = get_partner(session, principal, partner_id)
    return {"owner_id": partner.id, "balances": partner_balances(session, partner.id)}


@router.get("/v1/programs/{program_id}/liability", response_model=BalancesOut)
def program_liability(
    program_id: str, session: DbSession, principal: CommissionsRead
) -> dict[str, Any]:
    """What the program owes its partners per currency (pending + approved + processing)."""
    program = get_program(session, principal, program_id)
    return {"owner_id": program.id, "balances": program_balances(session, program.id)}
