"""Program analytics: overview, partner leaderboard, model usage, recent conversions.

Read-only. Every query is keyed by a program the caller was allowed to open (``get_program``);
partner-bound keys only reach ``partner.py`` (their own partner). Conversions are non-refund
events; revenue is defined in ``revenue.py``, the touch mix in ``mix.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.analytics.period import Period
from openpartner.analytics.revenue import (
    REFUND,
    SALE,
    ByCurrency,
    credited_conversions,
    in_range,
    is_conversion,
    partner_revenue,
)
from openpartner.attribution.records import AttributionRow
from openpartner.core.errors import Forbidden
from openpartner.core.ratios import fraction_str
from openpartner.db.sums import combine, money_sum
from openpartner.events.models import Event
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

REVENUE_BASIS = (
    "net = sales - refunds, each on the day it occurred; amounts are never added across currencies"
)


def require_program_view(principal: Principal) -> None:
    """Program-wide figures show every partner: a partner's key reads only its own analytics."""
    if principal.partner_id is not None:
        raise Forbidden(
            "A partner's key reads only /v1/partners/{its id}/analytics.",
            code="partner_key_forbidden",
        )


def partner_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    stmt = sa.select(Partner.id, Partner.name).where(Partner.id.in_(wanted))
    return {pid: name for pid, name in session.execute(stmt)}


def _attributed(event_id: Any = Event.id) -> sa.ColumnElement[bool]:
    """The event (by default: the event itself; for a refund: ``Event.refund_of``) has credits."""
    return sa.exists().where(AttributionRow.event_id == event_id)


def _revenue(
    session: Session, program_id: str, period: Period, *, attributed: bool = False
) -> tuple[ByCurrency, dict[str, int]]:
    """Sales minus refunds per currency and the number of sales per currency; ``attributed``
    keeps sales with credits and refunds of such sales."""
    revenue = ByCurrency()
    counts: dict[str, int] = {}
    sales = session.execute(
        sa.select(Event.currency, sa.func.count(), *money_sum(Event.amount))
        .where(*in_range(program_id, period), Event.type == SALE)
        .where(*([_attributed()] if attributed else []))
        .group_by(Event.currency)
    )
    for currency, n, high, low in sales:
        revenue.add_sale(currency, combine(high, low))
        if currency is not None:
            counts[currency] = int(n)
    refunds = session.execute(
        sa.select(Event.currency, *money_sum(Event.amount))
        .where(*in_range(program_id, period), Event.type == REFUND)
        .where(*([_attributed(Event.refund_of)] if attributed else []))
        .group_by(Event.currency)
    )
    for currency, high, low in refunds:
        revenue.add_refund(currency, combine(high, low))
    return revenue, counts


def _conversion_counts(
    session: Session, program_id: str, period: Period, *extra: sa.ColumnElement[bool]
) -> dict[str, Any]:
    rows = session.execute(
        sa.select(Event.type, sa.func.count())
        .where(*in_range(program_id, period), is_conversion(), *extra)
        .group_by(Event.type)
    )
    by_type = {t: int(n) for t, n in rows}
    return {"total": sum(by_type.values()), "by_type": dict(sorted(by_type.items()))}


def overview(session: Session, program: Program, period: Period) -> dict[str, Any]:
    everything, sales = _revenue(session, program.id, period)
    attributed, _ = _revenue(session, program.id, period, attributed=True)
    unattributed = ByCurrency()
    for currency, amounts in everything.amounts.items():
        part = attributed.amounts.get(currency)
        unattributed.add_sale(currency, amounts.sales - (part.sales if part else 0))
        unattributed.add_refund(currency, amounts.refunds - (part.refunds if part else 0))
    conversions = _conversion_counts(session, program.id, period)
    credited = _conversion_counts(session, program.id, period, _attributed())["total"]
    revenue = [
        {
            **everything.amounts[currency].as_dict(currency),
            "sales_count": sales.get(currency, 0),
            "average_sale": _average(everything.amounts[currency].sales, sales.get(currency, 0)),
        }
        for currency in sorted(everything.amounts)
    ]
    return {
        "program_id": program.id,
        "period": period.as_dict(),
        "conversions": conversions,
        "revenue": revenue,
        "revenue_basis": REVENUE_BASIS,
        "attributed": {"conversions": credited, "revenue": attributed.as_list()},
        "unattributed": {
            "conversions": conversions["total"] - credited,
            "revenue": unattributed.as_list(),
        },
    }


def _average(total: int, count: int) -> int | None:
    """Average sale in minor units, rounded once (half to even); None without sales."""
    return round(Fraction(total, count)) if count else None


def leaderboard(
    session: Session, program: Program, period: Period, currency: str, limit: int
) -> dict[str, Any]:
    revenue = partner_revenue(session, program.id, period)
    conversions = credited_conversions(session, program.id, period)
    ids = set(revenue) | set(conversions)
    empty = ByCurrency()

    def rank_key(partner_id: str) -> tuple[int, int, str]:
        net = revenue.get(partner_id, empty).net(currency)
        return (-net, -conversions.get(partner_id, 0), partner_id)

    ranked = sorted(ids, key=rank_key)[:limit]
    names = partner_names(session, ranked)
    return {
        "program_id": program.id,
        "period": period.as_dict(),
        "currency": currency,
        "revenue_basis": REVENUE_BASIS,
        "data": [
            {
                "rank": rank,
                "partner_id": pid,
                "name": names.get(pid, ""),
                "conversions": conversions.get(pid, 0),
                "net": revenue.get(pid, empty).net(currency),
                "revenue": revenue.get(pid, empty).as_list(),
            }
            for rank, pid in enumerate(ranked, start=1)
        ],
    }


def model_usage(session: Session, program: Program, period: Period) -> dict[str, Any]:
    joined = (
        sa.select()
        .select_from(AttributionRow)
        .join(Event, Event.id == AttributionRow.event_id)
        .where(*in_range(program.id, period), is_conversion())
    )
    rows = session.execute(
        joined.add_columns(
            AttributionRow.model,
            AttributionRow.engine_version,
            sa.func.count(sa.distinct(AttributionRow.event_id)),
            sa.func.count(),
        ).group_by(AttributionRow.model, AttributionRow.engine_version)
    )
    counted = sorted(((-int(e), m, v, int(r)) for m, v, e, r in rows))
    events = session.scalar(joined.add_columns(sa.func.count(sa.distinct(AttributionRow.event_id))))
    usage = [{"model": m, "engine_version": v, "events": -e, "rows": r} for e, m, v, r in counted]
    return {
        "program_id": program.id,
        "period": period.as_dict(),
        "program_model": program.attribution_model,
        "attributed_events": int(events or 0),
        "data": usage,
    }


def recent_conversions(session: Session, program: Program, limit: int) -> dict[str, Any]:
    events = session.scalars(
        sa.select(Event)
        .where(Event.program_id == program.id, is_conversion())
        .order_by(Event.occurred_at.desc(), Event.seq.desc())
        .limit(limit)
    ).all()
    ids = [e.id for e in events]
    credits: dict[str, dict[str, list[Any]]] = {i: {} for i in ids}
    rows = session.execute(
        sa.select(
            AttributionRow.event_id,
            AttributionRow.partner_id,
            AttributionRow.amount,
            AttributionRow.weight,
        )
        .where(AttributionRow.event_id.in_(ids))
        .order_by(AttributionRow.seq)
    )
    for event_id, partner_id, amount, weight in rows:
        entry = credits[event_id].setdefault(partner_id, [0, Fraction(0)])
        entry[0] += amount
        entry[1] += Fraction(weight)
    refunds = session.execute(
        sa.select(Event.refund_of, *money_sum(Event.amount))
        .where(Event.type == REFUND, Event.refund_of.in_(ids))
        .group_by(Event.refund_of)
    )
    refunded = {sale_id: combine(high, low) for sale_id, high, low in refunds}
    names = partner_names(session, (p for c in credits.values() for p in c))
    return {
        "program_id": program.id,
        "data": [
            {
                "event_id": e.id,
                "type": e.type,
                "customer_id": e.customer_id,
                "occurred_at": e.occurred_at,
                "amount": e.amount,
                "currency": e.currency,
                "refunded": refunded.get(e.id, 0),
                "attributed": bool(credits[e.id]),
                "credits": [
                    {
                        "partner_id": pid,
                        "name": names.get(pid, ""),
                        "amount": amount,
                        "weight": fraction_str(weight),
                    }
                    for pid, (amount, weight) in sorted(credits[e.id].items())
                ],
            }
            for e in events
        ],
    }
