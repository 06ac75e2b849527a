"""What an event earned, partner by partner, and why a credited partner earned nothing.

Read only: it reports what ``service.py`` booked and, where nothing was booked, which of the rules
(``rules.py``) in force at the event's time said no. A partner earns nothing for one of these
``reason`` codes:

    no_rule         no rule version was in force at the event's time (rules posted without
                    ``effective_from`` take effect when posted), or the version in force has no
                    rule for the event's type (and partner)
    not_eligible    a rule applies, but the customer's first event of the type came earlier
                    and the rule pays the first only, or ``max_months`` have passed
    nothing_earned  the rule pays 0 for this credit (a zero share or rate, or refunded)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.commissions.models import Commission, CommissionRuleVersion
from openpartner.commissions.rules import Rule, eligible, select_rule
from openpartner.commissions.rulesets import version_at
from openpartner.commissions.service import _first_at
from openpartner.events.models import Event


def for_event(session: Session, event: Event) -> list[dict[str, Any]]:
    """One entry per partner credited for ``event`` or holding a commission on it (a refund
    has none of its own: its sale's commissions show the refund)."""
    credits: dict[str, int] = {}
    for partner_id, amount in session.execute(
        sa.select(AttributionRow.partner_id, AttributionRow.amount).where(
            AttributionRow.event_id == event.id
        )
    ):
        credits[partner_id] = credits.get(partner_id, 0) + amount
    booked = {
        c.partner_id: c
        for c in session.scalars(sa.select(Commission).where(Commission.event_id == event.id))
    }
    if not credits and not booked:
        return []
    version = version_at(session, event.program_id, event.occurred_at)
    out = []
    for partner_id in sorted(set(credits) | set(booked)):
        commission = booked.get(partner_id)
        entry: dict[str, Any] = {
            "partner_id": partner_id,
            "credit": credits.get(partner_id, 0),
            "commission_id": None,
            "amount": None,
            "currency": None,
            "status": None,
            "counts": False,
            "reason": None,
            "detail": None,
        }
        if commission is not None:
            entry.update(
                commission_id=commission.id,
                amount=commission.amount,
                currency=commission.currency,
                status=commission.status,
                counts=commission.status != "reversed",
            )
        else:
            entry["reason"], entry["detail"] = _why_nothing(session, event, partner_id, version)
        out.append(entry)
    return out


def _why_nothing(
    session: Session, event: Event, partner_id: str, version: CommissionRuleVersion | None
) -> tuple[str, str]:
    at = event.occurred_at.isoformat()
    if version is None:
        first = session.scalar(
            sa.select(sa.func.min(CommissionRuleVersion.effective_from)).where(
                CommissionRuleVersion.program_id == event.program_id
            )
        )
        if first is None:
            return "no_rule", "The program has no commission rules."
        return (
            "no_rule",
            f"No commission rules were in force at the event's time ({at}): the program's "
            f"first rules take effect at {first.isoformat()} (rules posted without "
            "effective_from take effect when posted).",
        )
    rule = select_rule([Rule.from_dict(r) for r in version.rules], event.type, partner_id)
    if rule is None:
        return (
            "no_rule",
            f"The rules in force at the event's time ({version.id}) have no rule for "
            f"{event.type!r} events.",
        )
    if not eligible(rule, event.occurred_at, _first_at(session, event)):
        return (
            "not_eligible",
            f"The customer's first {event.type!r} event came earlier, and the rule pays "
            + ("the first only." if rule.recurrence == "first" else "for a limited time."),
        )
    return "nothing_earned", "The rule in force pays nothing for this credit."
