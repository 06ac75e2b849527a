"""Revenue in a range, per currency, and the part of it credited to each partner.

Revenue is booked on the day each event occurred: sales on the sale's day, refunds on the
refund's day (a refund in March of a February sale lowers March). ``net = sales - refunds``.
Amounts in different currencies are never added together.

A partner's credited revenue is the sum of its attribution rows on sales, minus its part of each
refund: the refund split (``core/money.split``) in proportion to what each partner was credited on
the refunded sale, so the partners' parts of a refund always sum to the refund. Rows on refund
events, if any, are ignored: a refund is always traced through its sale.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.analytics.period import Period
from openpartner.attribution.records import AttributionRow
from openpartner.core.money import split
from openpartner.db.sums import combine, money_sum
from openpartner.events.models import Event

REFUND = "refund"
SALE = "sale"


@dataclass
class Revenue:
    sales: int = 0
    refunds: int = 0

    @property
    def net(self) -> int:
        return self.sales - self.refunds

    def as_dict(self, currency: str) -> dict[str, object]:
        return {"currency": currency, "sales": self.sales, "refunds": self.refunds, "net": self.net}


@dataclass
class ByCurrency:
    """Revenue per currency; the only way amounts are accumulated here."""

    amounts: dict[str, Revenue] = field(default_factory=dict)

    def add_sale(self, currency: str | None, amount: int) -> None:
        if currency is not None:
            self.amounts.setdefault(currency, Revenue()).sales += amount

    def add_refund(self, currency: str | None, amount: int) -> None:
        if currency is not None:
            self.amounts.setdefault(currency, Revenue()).refunds += amount

    def net(self, currency: str) -> int:
        found = self.amounts.get(currency)
        return found.net if found else 0

    def as_list(self) -> list[dict[str, object]]:
        return [self.amounts[c].as_dict(c) for c in sorted(self.amounts)]


def in_range(program_id: str, period: Period) -> list[sa.ColumnElement[bool]]:
    return [Event.program_id == program_id, period.contains(Event.occurred_at)]


def is_conversion() -> sa.ColumnElement[bool]:
    """Every event type but refunds: leads, signups, sales and custom types."""
    return Event.type != REFUND


@dataclass(frozen=True, slots=True)
class RefundShare:
    partner_id: str
    currency: str | None
    amount: int
    """Positive: the part of the refund taken from this partner's credited revenue."""
    at: datetime


def credited_refunds(session: Session, program_id: str, period: Period) -> list[RefundShare]:
    """Each refund in the range, split over the partners credited on its sale."""
    refunds = session.execute(
        sa.select(Event.refund_of, Event.amount, Event.currency, Event.occurred_at)
        .where(*in_range(program_id, period), Event.type == REFUND)
        .order_by(Event.occurred_at, Event.seq)
    ).all()
    if not refunds:
        return []
    sale_ids = sa.select(Event.refund_of).where(*in_range(program_id, period), Event.type == REFUND)
    credits: dict[str, dict[str, int]] = defaultdict(dict)
    order: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)
    rows = session.execute(
        sa.select(AttributionRow.event_id, AttributionRow.partner_id, AttributionRow.amount)
        .add_columns(AttributionRow.seq)
        .where(AttributionRow.program_id == program_id, AttributionRow.event_id.in_(sale_ids))
        .order_by(AttributionRow.seq)
    )
    for event_id, partner_id, amount, seq in rows:
        by_partner = credits[event_id]
        by_partner[partner_id] = by_partner.get(partner_id, 0) + amount
        order[event_id].setdefault(partner_id, (seq, partner_id))
    shares = []
    for sale_id, amount, currency, at in refunds:
        weights = {p: a for p, a in credits.get(sale_id or "", {}).items() if a > 0}
        if not weights or not amount:
            continue
        for partner_id, part in split(amount, weights, order[sale_id or ""]).items():
            if part:
                shares.append(RefundShare(partner_id, currency, part, at))
    return shares


def partner_revenue(
    session: Session, program_id: str, period: Period, partner_id: str | None = None
) -> dict[str, ByCurrency]:
    """Credited revenue per partner (every partner of the program, or just ``partner_id``)."""
    stmt = (
        sa.select(
            AttributionRow.partner_id, AttributionRow.currency, *money_sum(AttributionRow.amount)
        )
        .join(Event, Event.id == AttributionRow.event_id)
        .where(*in_range(program_id, period), Event.type == SALE)
        .group_by(AttributionRow.partner_id, AttributionRow.currency)
    )
    if partner_id is not None:
        stmt = stmt.where(AttributionRow.partner_id == partner_id)
    out: dict[str, ByCurrency] = defaultdict(ByCurrency)
    for pid, currency, high, low in session.execute(stmt):
        out[pid].add_sale(currency, combine(high, low))
    for share in credited_refunds(session, program_id, period):
        if partner_id is None or share.partner_id == partner_id:
            out[share.partner_id].add_refund(share.currency, share.amount)
    return dict(out)


def credited_conversions(
    session: Session, program_id: str, period: Period, partner_id: str | None = None
) -> dict[str, int]:
    """Conversions credited per partner: an event counts once for every partner credited on it."""
    stmt = (
        sa.select(AttributionRow.partner_id, sa.func.count(sa.distinct(AttributionRow.event_id)))
        .join(Event, Event.id == AttributionRow.event_id)
        .where(*in_range(program_id, period), is_conversion())
        .group_by(AttributionRow.partner_id)
    )
    if partner_id is not None:
        stmt = stmt.where(AttributionRow.partner_id == partner_id)
    return {pid: int(n) for pid, n in session.execute(stmt)}
