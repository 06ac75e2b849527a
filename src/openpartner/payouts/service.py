"""Payout runs and the life of a payout.

A run claims every approved, unclaimed commission and adjustment of a program, groups them per
partner and currency, and makes one payout per group whose total reaches the program's minimum
(smaller balances stay where they are, for the next run; a total too large for one BIGINT is
paid as several payouts). Claiming takes row locks, so two runs
at once never claim the same commission: the second waits, then finds the rows claimed.

    pending (manual) ──mark paid──► paid
    processing (Stripe: intent committed, job enqueued) ──transfer──► paid
    pending | processing ──refused / cancelled──► failed (items released to the balance)
    paid ──transfer reversed──► failed (items released) or, when partial, an adjustment
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.commissions.models import Adjustment, Commission
from openpartner.commissions.service import audit, book_adjustment
from openpartner.core.errors import Conflict, NotFound, OpenPartnerError, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.ledger import accounts
from openpartner.ledger.service import Refs, move
from openpartner.payouts.models import ConnectAccount, Payout, PayoutItem, PayoutRun
from openpartner.programs.models import Program
from openpartner.worker.queue import enqueue

PROVIDERS = ("manual", "stripe")
MAX_PAYOUT = 2**63 - 1
"""A payout's amount is one BIGINT (each item is at most ``core.money.MAX_AMOUNT``)."""
TRANSFER_JOB = "payouts.transfer"


class InvalidPayoutState(Conflict):
    default_code = "invalid_payout_state"


def idempotency_key(payout_id: str) -> str:
    """Derived from the payout id only, so every retry of the transfer sends the same key."""
    return f"openpartner-payout-{payout_id}"


def refs(payout: Payout, actor: str) -> Refs:
    return Refs(
        program_id=payout.program_id,
        partner_id=payout.partner_id,
        currency=payout.currency,
        actor=actor,
        payout_id=payout.id,
    )


def minimum_for(program: Program, currency: str) -> int:
    return max(int(program.payout_minimums.get(currency, 1)), 1)


def run_payouts(
    session: Session, program: Program, actor: str, *, provider: str | None = None
) -> PayoutRun:
    provider = provider or program.payout_provider
    if provider not in PROVIDERS:
        raise ValidationFailed(f"Unknown payout provider {provider!r}.", code="invalid_provider")
    # Claiming is read-then-write of money: lock the rows (PostgreSQL) so a concurrent run
    # blocks, then sees them claimed. SQLite serializes writers with BEGIN IMMEDIATE.
    commissions = session.scalars(
        sa.select(Commission)
        .where(
            Commission.program_id == program.id,
            Commission.status == "approved",
            Commission.payout_id.is_(None),
        )
        .order_by(Commission.id)
        .with_for_update()
    ).all()
    adjustments = session.scalars(
        sa.select(Adjustment)
        .where(Adjustment.program_id == program.id, Adjustment.payout_id.is_(None))
        .order_by(Adjustment.id)
        .with_for_update()
    ).all()
    groups: dict[tuple[str, str], list[Commission | Adjustment]] = defaultdict(list)
    items: list[Commission | Adjustment] = [*commissions, *adjustments]
    for item in items:
        groups[(item.partner_id, item.currency)].append(item)
    destinations = _destinations(session, {p for p, _ in groups}) if provider == "stripe" else {}
    run = PayoutRun(id=new_id("run"), program_id=program.id, provider=provider, actor=actor)
    session.add(run)
    made: list[dict[str, Any]] = []
    carried: list[dict[str, Any]] = []
    for (partner_id, currency), items in sorted(groups.items()):
        total = sum(item.amount for item in items)
        money = {"partner_id": partner_id, "currency": currency, "amount": total}
        if total < minimum_for(program, currency):
            carried.append({**money, "reason": "below_minimum"})
            continue
        if provider == "stripe" and partner_id not in destinations:
            carried.append({**money, "reason": "not_connected"})
            continue
        for part in _parts(items):
            payout = _claim(session, run, program, partner_id, currency, part, actor)
            payout.destination = destinations.get(partner_id)
            if provider == "stripe":
                enqueue(session, TRANSFER_JOB, {"payout_id": payout.id})
            made.append({**money, "amount": payout.amount, "payout_id": payout.id})
    run.summary = {"payouts": made, "carried": carried}
    session.flush()
    return run


def _parts(items: list[Commission | Adjustment]) -> list[list[Commission | Adjustment]]:
    """``items`` in groups that each sum to at most :data:`MAX_PAYOUT`: one payout each. Almost
    always one group; a balance too large for one BIGINT is paid as several payouts rather than
    failing the run. Negative items (adjustments) go in the first group, so no group's total is
    negative when the whole is not."""
    parts: list[list[Commission | Adjustment]] = [[]]
    total = 0
    for item in sorted(items, key=lambda i: i.amount >= 0):  # stable: negatives first
        if parts[-1] and total + item.amount > MAX_PAYOUT:
            parts.append([])
            total = 0
        parts[-1].append(item)
        total += item.amount
    return parts


def _destinations(session: Session, partner_ids: set[str]) -> dict[str, str]:
    """Stripe accounts that can receive transfers, per partner."""
    if not partner_ids:
        return {}
    rows = session.scalars(
        sa.select(ConnectAccount).where(
            ConnectAccount.partner_id.in_(partner_ids), ConnectAccount.transfers_active.is_(True)
        )
    )
    return {row.partner_id: row.stripe_account_id for row in rows}


def _claim(
    session: Session,
    run: PayoutRun,
    program: Program,
    partner_id: str,
    currency: str,
    items: list[Commission | Adjustment],
    actor: str,
) -> Payout:
    payout_id = new_id("pay")
    payout = Payout(
        id=payout_id,
        run_id=run.id,
        program_id=program.id,
        partner_id=partner_id,
        currency=currency,
        amount=sum(item.amount for item in items),
        provider=run.provider,
        # For Stripe this committed row is the intent: the transfer is only ever made by the
        # job, with this idempotency key and transfer_group = the payout id.
        status="processing" if run.provider == "stripe" else "pending",
        idempotency_key=idempotency_key(payout_id),
        actor=actor,
    )
    session.add(payout)
    for item in items:
        item.payout_id = payout.id
        is_commission = isinstance(item, Commission)
        session.add(
            PayoutItem(
                payout_id=payout.id,
                commission_id=item.id if is_commission else None,
                adjustment_id=None if is_commission else item.id,
                amount=item.amount,
                currency=currency,
            )
        )
    move(
        session,
        "payout_claim",
        refs(payout, actor),
        payout.amount,
        accounts.APPROVED,
        accounts.PROCESSING,
    )
    return payout


def lock_payout(session: Session, payout_id: str) -> Payout | None:
    # Settling a payout is read-then-write of money: lock it (PostgreSQL).
    return session.scalar(sa.select(Payout).where(Payout.id == payout_id).with_for_update())


def _claimed_commissions(session: Session, payout: Payout) -> list[Commission]:
    return list(
        session.scalars(
            sa.select(Commission)
            .where(Commission.payout_id == payout.id)
            .order_by(Commission.id)
            .with_for_update()
        )
    )


def mark_paid(
    session: Session,
    payout: Payout,
    actor: str,
    *,
    reference: str | None = None,
    transfer_id: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the money as sent; False when it already was."""
    if payout.status == "paid":
        return False
    if payout.status not in ("pending", "processing"):
        raise InvalidPayoutState(f"A {payout.status} payout cannot be marked paid.")
    now = now or utc_now()
    move(session, "payout", refs(payout, actor), payout.amount, accounts.PROCESSING, accounts.CASH)
    for commission in _claimed_commissions(session, payout):
        commission.status, commission.paid_at = "paid", now
        audit(session, commission, "paid", "approved", actor, reason=f"payout {payout.id}")
    payout.status, payout.paid_at = "paid", now
    payout.reference = reference or payout.reference
    payout.transfer_id = transfer_id or payout.transfer_id
    session.flush()
    return True


def _release(session: Session, payout: Payout, actor: str, was_paid: bool) -> None:
    for commission in _claimed_commissions(session, payout):
        commission.payout_id = None
        if was_paid:
            commission.status, commission.paid_at = "approved", None
            audit(session, commission, "unpaid", "paid", actor, reason=f"payout {payout.id} failed")
    session.execute(
        sa.update(Adjustment).where(Adjustment.payout_id == payout.id).values(payout_id=None)
    )


def fail_payout(
    session: Session,
    payout: Payout,
    actor: str,
    *,
    code: str,
    message: str,
    now: datetime | None = None,
) -> bool:
    """The money was not sent: release the payout's items to the partner's balance for the next
    run. False when the payout had already failed."""
    if payout.status == "failed":
        return False
    if payout.status not in ("pending", "processing"):
        raise InvalidPayoutState(f"A {payout.status} payout cannot fail; reverse it instead.")
    move(
        session,
        "payout_failure",
        refs(payout, actor),
        payout.amount,
        accounts.PROCESSING,
        accounts.APPROVED,
    )
    _release(session, payout, actor, was_paid=False)
    payout.status, payout.failed_at = "failed", now or utc_now()
    payout.failure_code, payout.failure_message = code[:64], message
    session.flush()
    return True


def record_reversal(session: Session, payout: Payout, amount_reversed: int, actor: str) -> bool:
    """The provider took (part of) a paid payout back (Stripe ``transfer.reversed``).

    A full reversal fails the payout and releases its items to the partner's balance; a partial
    one returns the reversed part to the balance as an adjustment. ``amount_reversed`` is the
    cumulative total, so a redelivered event changes nothing."""
    if payout.paid_at is None:
        raise InvalidPayoutState(f"Payout {payout.id} was never paid.")
    delta = min(amount_reversed, payout.amount) - payout.amount_reversed
    if delta <= 0:
        return False
    ref = refs(payout, actor)
    if amount_reversed < payout.amount:
        book_adjustment(session, ref, delta, "transfer_reversed", debit=accounts.CASH)
    else:
        if payout.amount_reversed:  # undo the earlier partial returns: the items come back whole
            book_adjustment(
                session, ref, -payout.amount_reversed, "transfer_reversed", debit=accounts.CASH
            )
        move(session, "payout_failure", ref, payout.amount, accounts.CASH, accounts.APPROVED)
        _release(session, payout, actor, was_paid=True)
        payout.status, payout.failed_at = "failed", utc_now()
        payout.failure_code = "transfer_reversed"
        payout.failure_message = "The transfer was reversed; the money is back in the balance."
    payout.amount_reversed = min(amount_reversed, payout.amount)
    session.flush()
    return True


def get_payout(
    session: Session, principal: Principal, payout_id: str, *, lock: bool = False
) -> Payout:
    payout = lock_payout(session, payout_id) if lock else session.get(Payout, payout_id)
    if payout is None:
        raise NotFound(f"Payout {payout_id} not found.")
    principal.check_program(payout.program_id)
    principal.check_partner(payout.partner_id)
    return payout


def mark_paid_manually(
    session: Session, principal: Principal, payout_id: str, reference: str | None
) -> tuple[Payout, bool]:
    payout = get_payout(session, principal, payout_id, lock=True)
    if payout.provider != "manual":
        raise InvalidPayoutState(
            "Stripe payouts are settled by their transfer, not marked paid by hand."
        )
    return payout, mark_paid(session, payout, principal.key_id, reference=reference)


def mark_paid_in_bulk(
    session: Session, principal: Principal, ids: list[str], reference: str | None
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    counts = {"changed": 0, "unchanged": 0, "refused": 0}
    for payout_id in dict.fromkeys(ids):
        try:
            payout, changed = mark_paid_manually(session, principal, payout_id, reference)
            result = "changed" if changed else "unchanged"
            results.append({"id": payout_id, "result": result, "status": payout.status})
        except OpenPartnerError as exc:
            result = "refused"
            results.append(
                {"id": payout_id, "result": result, "code": exc.code, "detail": exc.detail}
            )
        counts[result] += 1
    return {**counts, "results": results}


def cancel_manual(session: Session, principal: Principal, payout_id: str, reason: str) -> Payout:
    payout = get_payout(session, principal, payout_id, lock=True)
    if payout.provider != "manual":
        raise InvalidPayoutState("A Stripe payout cannot be cancelled once its intent exists.")
    fail_payout(session, payout, principal.key_id, code="cancelled", message=reason)
    return payout
