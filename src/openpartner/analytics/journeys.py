"""Data-driven views over a program's partner journeys: Markov removal effect and Shapley
(``openpartner.attribution.analytics``). ANALYTICS ONLY: never used for payouts.

A journey is the ordered partners of one customer's eligible touches (clicks that are not flagged,
touchpoints, from partners that are not revoked; ordered by time, ingest sequence, id):

- converted: the customer's first conversion in the range, with the touches the attribution
  engine would consider for it (``attribution/touches.py``, within the program's window, up to
  the conversion plus the clock-skew grace). Promotion codes are left out: they only exist on
  sales, so they would look like a partner that always converts.
- not converted: customers known through identify edges or touchpoints with no conversion in the
  range, with their eligible touches inside the range.

Only journeys with at least one partner touch count: non-partner customers who never convert are
invisible to us, so including the ones who do would skew both views.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.analytics.identities import clicks_by_customer
from openpartner.analytics.period import Period
from openpartner.analytics.revenue import REFUND, in_range, is_conversion
from openpartner.analytics.service import partner_names
from openpartner.attribution import (
    CLOCK_SKEW_GRACE,
    Journey,
    Touch,
    markov_removal,
    shapley,
    touch_order,
)
from openpartner.clicks.models import Click
from openpartner.core.errors import ValidationFailed
from openpartner.core.ratios import fraction_str, ratio
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

NOTICE = "Analytics only, never used for payouts."
_INSTANT = timedelta(microseconds=1)  # the range's end is exclusive


@dataclass(frozen=True, slots=True)
class Journeys:
    journeys: list[Journey]
    conversions_without_partner: int
    """Customers whose first conversion in the range had no eligible partner touch."""


class TouchIndex:
    """The program's identified clicks and its touchpoints between ``since`` and ``until``,
    loaded in three queries and looked up per customer, deal or conversion."""

    def __init__(self, session: Session, program_id: str, since: datetime, until: datetime):
        self.clicks_of = clicks_by_customer(session, program_id)
        identified = sa.select(IdentityEdge.click_id).where(
            IdentityEdge.program_id == program_id, IdentityEdge.click_id.is_not(None)
        )
        clicks = session.scalars(
            sa.select(Click).where(
                Click.program_id == program_id,
                Click.id.in_(identified),
                Click.clicked_at >= since,
                Click.clicked_at <= until,
            )
        )
        self.clicks = {
            c.id: Touch(
                c.id, c.seq, c.partner_id, c.clicked_at, "click", None, c.flagged, c.revoked
            )
            for c in clicks
        }
        self.by_customer: dict[str, list[Touch]] = defaultdict(list)
        self.by_deal: dict[str, list[Touch]] = defaultdict(list)
        self.by_deal_customer: dict[str, list[Touch]] = defaultdict(list)
        touchpoints = session.execute(
            sa.select(Touchpoint, Deal.customer_id)
            .outerjoin(Deal, Deal.id == Touchpoint.deal_id)
            .where(
                Touchpoint.program_id == program_id,
                Touchpoint.occurred_at >= since,
                Touchpoint.occurred_at <= until,
            )
        )
        for tp, deal_customer in touchpoints:
            touch = Touch(tp.id, tp.seq, tp.partner_id, tp.occurred_at, "touchpoint", tp.type)
            if tp.customer_id:
                self.by_customer[tp.customer_id].append(touch)
            if tp.deal_id:
                self.by_deal[tp.deal_id].append(touch)
            if deal_customer:
                self.by_deal_customer[deal_customer].append(touch)

    def customers(self) -> set[str]:
        return set(self.clicks_of) | set(self.by_customer) | set(self.by_deal_customer)

    def of_conversion(self, event: Event) -> list[Touch]:
        """What ``attribution/touches.py`` gathers for the event, less the coupon: the customer's
        clicks, and touchpoints on the customer or on the event's deal."""
        customer = event.customer_id or ""
        deal = self.by_deal.get(event.deal_id, []) if event.deal_id else []
        return _unique(self._clicks(customer), self.by_customer.get(customer, []), deal)

    def of_customer(self, customer_id: str) -> list[Touch]:
        """The customer's clicks, and touchpoints on the customer or on its deals."""
        return _unique(
            self._clicks(customer_id),
            self.by_customer.get(customer_id, []),
            self.by_deal_customer.get(customer_id, []),
        )

    def _clicks(self, customer_id: str) -> list[Touch]:
        ids = self.clicks_of.get(customer_id, set())
        return [self.clicks[i] for i in sorted(ids) if i in self.clicks]


def _unique(*groups: list[Touch]) -> list[Touch]:
    return list({t.id: t for group in groups for t in group}.values())


def collect(
    session: Session, program: Program, period: Period, conversion_type: str | None = None
) -> Journeys:
    revoked = set(
        session.scalars(
            sa.select(Partner.id).where(
                Partner.program_id == program.id, Partner.status == "revoked"
            )
        )
    )
    stmt = sa.select(Event).where(
        *in_range(program.id, period), is_conversion(), Event.customer_id.is_not(None)
    )
    if conversion_type is not None:
        stmt = stmt.where(Event.type == conversion_type)
    first: dict[str, Event] = {}
    for event in session.scalars(stmt.order_by(Event.occurred_at, Event.seq)):
        first.setdefault(event.customer_id or "", event)
    window = timedelta(days=program.attribution_window_days)
    index = TouchIndex(session, program.id, period.start - window, period.end + CLOCK_SKEW_GRACE)
    journeys: list[Journey] = []
    without_partner = 0
    for _, event in sorted(first.items()):
        at = event.occurred_at
        partners = _partners(
            index.of_conversion(event), revoked, at - window, at + CLOCK_SKEW_GRACE
        )
        if partners:
            journeys.append(Journey(partners, converted=True))
        else:
            without_partner += 1
    for customer_id in sorted(index.customers() - set(first)):
        touches = index.of_customer(customer_id)
        partners = _partners(touches, revoked, period.start, period.end - _INSTANT)
        if partners:
            journeys.append(Journey(partners, converted=False))
    return Journeys(journeys, without_partner)


def _partners(
    touches: list[Touch], revoked: set[str], start: datetime, end: datetime
) -> tuple[str, ...]:
    """Partners of the eligible touches in ``[start, end]``, in attribution order."""
    eligible = [
        t
        for t in touches
        if not t.flagged
        and not t.partner_revoked
        and t.partner_id not in revoked
        and start <= t.at <= end
    ]
    return tuple(t.partner_id for t in sorted(eligible, key=touch_order))


def data_driven(
    session: Session, program: Program, period: Period, conversion_type: str | None = None
) -> dict[str, Any]:
    if conversion_type == REFUND:
        raise ValidationFailed("A refund is not a conversion.", code="invalid_conversion_type")
    found = collect(session, program, period, conversion_type)
    journeys = found.journeys
    converted = sum(1 for j in journeys if j.converted)
    markov = markov_removal(journeys)
    values = shapley(journeys)
    seen: Counter[str] = Counter()
    won: Counter[str] = Counter()
    for journey in journeys:
        for partner_id in set(journey.partners):
            seen[partner_id] += 1
            won[partner_id] += journey.converted
    by_shapley = {p.partner_id: p for p in values.partners}
    names = partner_names(session, seen)
    ordered = sorted(markov.partners, key=lambda m: (-m.share, m.partner_id))
    partners = [
        {
            "partner_id": m.partner_id,
            "name": names.get(m.partner_id, ""),
            "journeys": seen[m.partner_id],
            "converted_journeys": won[m.partner_id],
            "removal_effect": ratio(m.removal_effect),
            "markov_share": ratio(m.share),
            "shapley_value": fraction_str(by_shapley[m.partner_id].value),
            "shapley_share": ratio(by_shapley[m.partner_id].share),
        }
        for m in ordered
    ]
    return {
        "program_id": program.id,
        "period": period.as_dict(),
        "notice": NOTICE,
        "conversion_type": conversion_type,
        "exact": markov.exact,
        "conversion_probability": ratio(markov.conversion_probability),
        "journeys": {
            "total": len(journeys),
            "converted": converted,
            "not_converted": len(journeys) - converted,
            "conversions_without_partner_touch": found.conversions_without_partner,
        },
        "data": partners,
    }
