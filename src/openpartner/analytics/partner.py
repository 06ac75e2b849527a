"""One partner's analytics: conversions credited, revenue credited per currency, its share of the
program's attributed revenue, its touch mix and monthly totals (calendar months, UTC)."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.analytics.mix import touch_mix
from openpartner.analytics.period import Period, month_of
from openpartner.analytics.revenue import (
    SALE,
    ByCurrency,
    credited_refunds,
    in_range,
    is_conversion,
)
from openpartner.analytics.service import REVENUE_BASIS
from openpartner.attribution.records import AttributionRow
from openpartner.core.ratios import ratio
from openpartner.db.sums import combine, money_sum
from openpartner.events.models import Event
from openpartner.partners.models import Partner


def partner_analytics(
    session: Session, principal: Principal, partner: Partner, period: Period
) -> dict[str, Any]:
    program_id = partner.program_id
    rows = session.execute(
        sa.select(
            AttributionRow.event_id,
            Event.type,
            Event.occurred_at,
            AttributionRow.currency,
            AttributionRow.amount,
        )
        .join(Event, Event.id == AttributionRow.event_id)
        .where(*in_range(program_id, period), is_conversion())
        .where(AttributionRow.partner_id == partner.id)
    ).all()
    total = ByCurrency()
    by_type: dict[str, set[str]] = defaultdict(set)
    months = {m: (set[str](), ByCurrency()) for m in period.months()}
    for event_id, type_, at, currency, amount in rows:
        by_type[type_].add(event_id)
        events, revenue = months[month_of(at)]
        events.add(event_id)
        if type_ == SALE:
            revenue.add_sale(currency, amount)
            total.add_sale(currency, amount)
    program_net: dict[str, int] = defaultdict(int)
    for share in credited_refunds(session, program_id, period):
        if share.currency is not None:
            program_net[share.currency] -= share.amount
        if share.partner_id == partner.id:
            months[month_of(share.at)][1].add_refund(share.currency, share.amount)
            total.add_refund(share.currency, share.amount)
    credited_sales = session.execute(
        sa.select(AttributionRow.currency, *money_sum(AttributionRow.amount))
        .join(Event, Event.id == AttributionRow.event_id)
        .where(*in_range(program_id, period), Event.type == SALE)
        .group_by(AttributionRow.currency)
    )
    for currency, high, low in credited_sales:
        if currency is not None:
            program_net[currency] += combine(high, low)
    counts = {t: len(ids) for t, ids in sorted(by_type.items())}
    return {
        "partner_id": partner.id,
        "program_id": program_id,
        "name": partner.name,
        "period": period.as_dict(),
        "conversions": {"total": len({r[0] for r in rows}), "by_type": counts},
        "revenue": total.as_list(),
        "revenue_basis": REVENUE_BASIS,
        # The program's totals follow from a share and the partner's own revenue, so a
        # partner's own key does not get the share: it would reveal every other partner's sum.
        "revenue_share": None
        if principal.partner_id is not None
        else _shares(total, dict(program_net)),
        "touch_mix": touch_mix(session, program_id, period, partner.id),
        "months": [
            {"month": month, "conversions": len(events), "revenue": revenue.as_list()}
            for month, (events, revenue) in months.items()
        ],
    }


def _shares(partner: ByCurrency, program_net: dict[str, int]) -> list[dict[str, Any]]:
    """The partner's net over the program's attributed net, per currency (None when the
    program's attributed net is 0)."""
    out = []
    for currency in sorted(set(program_net) | set(partner.amounts)):
        mine, whole = partner.net(currency), program_net.get(currency, 0)
        out.append(
            {
                "currency": currency,
                "partner_net": mine,
                "program_net": whole,
                "share": ratio(Fraction(mine, whole)) if whole else None,
            }
        )
    return out
