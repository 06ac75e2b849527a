"""Deriving commissions from attribution, and keeping them in step when an event is re-derived
or refunded.

:func:`sync_event` is called by attribution for every event (refunds too). It computes what each
partner should earn for the event now — its current attribution rows, the rule version in force
at the event's time, minus refunds in proportion — and books the difference against what exists
for that (event, partner):

- nothing yet → a ``pending`` commission and its accrual;
- unpaid and unclaimed → adjusted in place (accrual or reversal entries), ``reversed`` at zero;
- paid, or claimed by a payout in flight → an :class:`Adjustment` carried into the partner's
  next payout (money that has moved is never rewritten).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.commissions.models import (
    Adjustment,
    Commission,
    CommissionAudit,
    CommissionRuleVersion,
)
from openpartner.commissions.rules import Earning, Rule, Share, after_refunds, earnings
from openpartner.commissions.rulesets import matures_at, version_at
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.db.sums import combine, money_sum
from openpartner.events.models import Event
from openpartner.ledger import accounts
from openpartner.ledger.service import Refs, move
from openpartner.programs.models import Program

log = logging.getLogger(__name__)
ATTRIBUTION_ACTOR = "system:attribution"
REFUND_ACTOR = "system:refund"


def sync_event(session: Session, event: Event) -> None:
    """Bring the commissions of ``event`` (of its sale, for a refund) in line with what they
    should be now. Idempotent: a second call with nothing changed books nothing."""
    if event.type == "refund":
        sale = session.scalar(sa.select(Event).where(Event.id == event.refund_of))
        if sale is not None:
            _sync(session, sale, event)
        return
    _sync(session, event, event)


def _sync(session: Session, sale: Event, cause: Event) -> None:
    version_id, targets = targets_for(session, sale)
    # Read-then-write of money: lock the event's commissions (PostgreSQL; SQLite serializes
    # writers with BEGIN IMMEDIATE, and FOR UPDATE is not rendered there).
    existing = {
        c.partner_id: c
        for c in session.scalars(
            sa.select(Commission)
            .where(Commission.event_id == sale.id)
            .order_by(Commission.id)  # one lock order everywhere: no deadlocks
            .with_for_update()
        )
    }
    actor = REFUND_ACTOR if cause.type == "refund" else ATTRIBUTION_ACTOR
    program: Program | None = None
    for partner_id in sorted(set(targets) | set(existing)):
        target = targets.get(partner_id)
        commission = existing.get(partner_id)
        if commission is None:
            if target is not None:
                program = program or session.get_one(Program, sale.program_id)
                _create(session, program, sale, partner_id, target, version_id)
            continue
        if target is not None and target.currency != commission.currency:
            log.warning(
                "commission %s stays in %s: the rules now pay %s",
                commission.id,
                commission.currency,
                target.currency,
            )
            continue
        _reconcile(session, commission, target, version_id, cause, actor)


def targets_for(session: Session, sale: Event) -> tuple[str | None, dict[str, Earning]]:
    """What each partner should earn for ``sale`` now (refunds deducted), and the rule version."""
    shares: dict[str, Share] = {}
    for row in session.scalars(sa.select(AttributionRow).where(AttributionRow.event_id == sale.id)):
        old = shares.get(row.partner_id, Share(0, Fraction(0)))
        shares[row.partner_id] = Share(old.amount + row.amount, old.weight + Fraction(row.weight))
    if not shares:
        return None, {}
    version = version_at(session, sale.program_id, sale.occurred_at)
    if version is None:
        return None, {}
    gross = earnings(
        [Rule.from_dict(r) for r in version.rules],
        event_type=sale.type,
        currency=sale.currency,
        occurred_at=sale.occurred_at,
        first_at=_first_at(session, sale),
        shares=shares,
    )
    refunded = _refunded(session, sale.id)
    net = {
        p: replace(e, amount=after_refunds(e.amount, sale.amount or 0, refunded))
        for p, e in gross.items()
    }
    return version.id, net


def _first_at(session: Session, event: Event) -> datetime | None:
    """When the customer's first event of this type happened, if it is not this one."""
    if not event.customer_id:
        return None
    first = session.execute(
        sa.select(Event.id, Event.occurred_at)
        .where(
            Event.program_id == event.program_id,
            Event.customer_id == event.customer_id,
            Event.type == event.type,
        )
        .order_by(Event.occurred_at, Event.seq)
        .limit(1)
    ).first()
    return None if first is None or first.id == event.id else first.occurred_at


def _refunded(session: Session, sale_id: str) -> int:
    row = session.execute(
        sa.select(*money_sum(Event.amount)).where(
            Event.refund_of == sale_id, Event.type == "refund"
        )
    ).one()
    return combine(*row)


def refs(commission: Commission, actor: str, *, event_id: str | None = None) -> Refs:
    return Refs(
        program_id=commission.program_id,
        partner_id=commission.partner_id,
        currency=commission.currency,
        actor=actor,
        commission_id=commission.id,
        event_id=event_id,
    )


def audit(
    session: Session,
    commission: Commission,
    action: str,
    from_status: str | None,
    actor: str,
    *,
    reason: str | None = None,
    delta: int = 0,
) -> None:
    session.add(
        CommissionAudit(
            id=new_id("aud"),
            commission_id=commission.id,
            action=action,
            from_status=from_status,
            to_status=commission.status,
            amount_delta=delta,
            actor=actor,
            reason=reason,
            at=utc_now(),
        )
    )


def _create(
    session: Session,
    program: Program,
    sale: Event,
    partner_id: str,
    target: Earning,
    version_id: str | None,
) -> None:
    if target.amount <= 0:
        return
    commission = Commission(
        id=new_id("com"),
        program_id=sale.program_id,
        partner_id=partner_id,
        event_id=sale.id,
        event_type=sale.type,
        amount=target.amount,
        currency=target.currency,
        base_amount=target.base_amount,
        rule_version_id=version_id,
        rule=target.rule.as_dict(),
        status="pending",
        matures_at=_matures_at(session, sale, version_id),
    )
    session.add(commission)
    move(
        session,
        "accrual",
        refs(commission, ATTRIBUTION_ACTOR, event_id=sale.id),
        target.amount,
        accounts.EXPENSE,
        accounts.PENDING,
    )
    audit(session, commission, "accrued", None, ATTRIBUTION_ACTOR, delta=target.amount)


def _matures_at(session: Session, sale: Event, version_id: str | None) -> datetime:
    """The event's maturity under the rule version that priced it (the one in force at the
    event's time): recorded on the version, so a commission created later for the same event
    (a replay, a late identify) matures with the others, whatever the program says now."""
    version = (
        session.scalar(
            sa.select(CommissionRuleVersion).where(CommissionRuleVersion.id == version_id)
        )
        if version_id is not None
        else version_at(session, sale.program_id, sale.occurred_at)
    )
    if version is None:  # no rules, no commission: unreachable, but say so rather than guess
        raise ValueError(f"no commission rules in force for event {sale.id}")
    return matures_at(version, sale.occurred_at)


def adjustments_total(session: Session, commission_id: str) -> int:
    row = session.execute(
        sa.select(*money_sum(Adjustment.amount)).where(Adjustment.commission_id == commission_id)
    ).one()
    return combine(*row)


def _reconcile(
    session: Session,
    commission: Commission,
    target: Earning | None,
    version_id: str | None,
    cause: Event,
    actor: str,
) -> None:
    amount = target.amount if target is not None else 0
    reason = "refund" if cause.type == "refund" else "attribution"
    if commission.status == "reversed":
        # Only a reversal caused by attribution moving away is undone when it moves back; an
        # admin's reversal (or a full refund) stands.
        if commission.reversed_by == ATTRIBUTION_ACTOR and amount > 0 and target is not None:
            commission.status, commission.amount = "pending", amount
            commission.reversed_at = commission.reversed_by = commission.reason = None
            _explain(commission, target, version_id)
            move(
                session,
                "accrual",
                refs(commission, actor, event_id=cause.id),
                amount,
                accounts.EXPENSE,
                accounts.PENDING,
            )
            audit(session, commission, "reopened", "reversed", actor, delta=amount)
        return
    adjusted = adjustments_total(session, commission.id)
    delta = amount - (commission.amount + adjusted)
    moved = commission.status == "paid" or commission.payout_id is not None
    if delta == 0:
        if target is not None and not moved:
            _explain(commission, target, version_id)
        return
    if moved or adjusted:
        book_adjustment(
            session,
            refs(commission, actor, event_id=cause.id),
            delta,
            reason,
        )
        audit(session, commission, "adjusted_after_payment", commission.status, actor, delta=delta)
        return
    liability = accounts.liability_for(commission.status)
    kind = "accrual" if delta > 0 else "reversal"
    move(
        session,
        kind,
        refs(commission, actor, event_id=cause.id),
        delta,
        accounts.EXPENSE,
        liability,
    )
    before = commission.status
    if amount == 0:
        commission.status = "reversed"
        commission.reversed_at, commission.reversed_by = utc_now(), actor
        commission.reason = "Refunded." if reason == "refund" else "Attribution moved."
        audit(session, commission, "reversed", before, actor, reason=commission.reason, delta=delta)
    else:
        commission.amount = amount
        if target is not None:
            _explain(commission, target, version_id)
        audit(session, commission, "adjusted", before, actor, reason=reason, delta=delta)


def _explain(commission: Commission, target: Earning, version_id: str | None) -> None:
    commission.base_amount = target.base_amount
    commission.rule = target.rule.as_dict()
    commission.rule_version_id = version_id


def book_adjustment(
    session: Session, ref: Refs, amount: int, reason: str, *, debit: str = accounts.EXPENSE
) -> Adjustment:
    """A signed change to the partner's approved balance, netted against the next payout.
    ``debit`` is where the money comes from: the merchant's expense, or the cash a reversed
    transfer brought back."""
    adjustment = Adjustment(
        id=new_id("adj"),
        program_id=ref.program_id,
        partner_id=ref.partner_id,
        amount=amount,
        currency=ref.currency,
        reason=reason,
        commission_id=ref.commission_id,
        event_id=ref.event_id,
        source_payout_id=ref.payout_id,
        actor=ref.actor,
    )
    session.add(adjustment)
    move(
        session,
        "adjustment",
        replace(ref, adjustment_id=adjustment.id),
        amount,
        debit,
        accounts.APPROVED,
    )
    return adjustment


# One program per execution (an ingest almost always has one): the statement is always the same,
# so it is built and compiled once.
_HAS_COMMISSIONS = sa.select(Program.id).where(
    Program.id == sa.bindparam("program_id"),
    sa.or_(
        *(
            sa.exists().where(model.program_id == Program.id)
            for model in (CommissionRuleVersion, Commission)
        )
    ),
)


def programs_with_commissions(session: Session, program_ids: Iterable[str]) -> set[str]:
    """The programs among ``program_ids`` with commission rules or commissions: only their
    events have commissions to bring in line. An index probe or two per program."""
    return {
        p
        for p in sorted(set(program_ids))
        if session.scalar(_HAS_COMMISSIONS, {"program_id": p}) is not None
    }


def sync_events(session: Session, event_ids: Sequence[str]) -> None:
    """:func:`sync_event` for many events. Programs with no commission rules and no
    commissions have nothing to sync; callers that know the events' programs skip them before
    calling (:func:`programs_with_commissions`), which saves loading the events."""
    if not event_ids:
        return
    events: list[Event] = []
    for start in range(0, len(event_ids), 500):
        chunk = list(event_ids[start : start + 500])
        events.extend(
            session.scalars(sa.select(Event).where(Event.id.in_(chunk)).order_by(Event.seq))
        )
    ruled = programs_with_commissions(session, (e.program_id for e in events))
    for event in events:
        if event.program_id in ruled:
            sync_event(session, event)
