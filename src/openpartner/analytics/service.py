"""Program analytics: overview, partner leaderboard, model usage, touch mix, recent conversions.

Read-only. Every query is keyed by a program the caller was allowed to open (``get_program``);
partner-bound keys only reach ``partners.py`` (their own partner). Conversions are non-refund
events; revenue is in ``revenue.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.analytics.period import Period, fraction_str, ratio
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
from openpartner.clicks.models import Click
from openpartner.core.errors import Forbidden
from openpartner.coupons.models import PromotionCode
from openpartner.deals.models import Touchpoint
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
        sa.select(Event.currency, sa.func.count(), sa.func.sum(Event.amount))
        .where(*in_range(program_id, period), Event.type == SALE)
        .where(*([_attributed()] if attributed else []))
        .group_by(Event.currency)
    )
    for currency, n, total in sales:
        revenue.add_sale(currency, int(total or 0))
        if currency is not None:
            counts[currency] = int(n)
    refunds = session.execute(
        sa.select(Event.currency, sa.func.sum(Event.amount))
        .where(*in_range(program_id, period), Event.type == REFUND)
        .where(*([_attributed(Event.refund_of)] if attributed else []))
        .group_by(Event.currency)
    )
    for currency, total in refunds:
        revenue.add_refund(currency, int(total or 0))
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
            **amounts,
            "sales_count": sales.get(str(amounts["currency"]), 0),
            "average_sale": _average(amounts["sales"], sales.get(str(amounts["currency"]), 0)),
        }
        for amounts in everything.as_list()
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


def _average(total: object, count: int) -> int | None:
    """Average sale in minor units, rounded once (half to even); None without sales."""
    return round(Fraction(int(str(total)), count)) if count else None


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
    ).all()
    events = session.scalar(joined.add_columns(sa.func.count(sa.distinct(AttributionRow.event_id))))
    usage = [
        {"model": m, "engine_version": v, "events": int(e), "rows": int(r)} for m, v, e, r in rows
    ]
    usage.sort(key=lambda u: (-int(str(u["events"])), str(u["model"]), str(u["engine_version"])))
    return {
        "program_id": program.id,
        "period": period.as_dict(),
        "program_model": program.attribution_model,
        "attributed_events": int(events or 0),
        "data": usage,
    }


def touch_mix(
    session: Session, program_id: str, period: Period, partner_id: str | None = None
) -> list[dict[str, Any]]:
    """Touches recorded in the range (clicks, touchpoints per type, promotion-code uses) next to
    the touches credited on the range's conversions (attribution rows per kind and type)."""
    mix: dict[tuple[str, str | None], dict[str, int]] = {}

    def slot(kind: str, type_: str | None) -> dict[str, int]:
        return mix.setdefault(
            (kind, type_), {"recorded": 0, "flagged": 0, "credited": 0, "credited_events": 0}
        )

    def mine(column: Any) -> list[sa.ColumnElement[bool]]:
        return [column == partner_id] if partner_id is not None else []

    flagged = sa.or_(Click.bot, Click.duplicate, Click.velocity, Click.revoked)
    clicks = session.execute(
        sa.select(sa.func.count(), sa.func.sum(sa.case((flagged, 1), else_=0))).where(
            Click.program_id == program_id,
            period.contains(Click.clicked_at),
            *mine(Click.partner_id),
        )
    ).one()
    if clicks[0]:
        slot("click", None).update(recorded=int(clicks[0]), flagged=int(clicks[1] or 0))
    touchpoints = session.execute(
        sa.select(Touchpoint.type, sa.func.count())
        .where(
            Touchpoint.program_id == program_id,
            period.contains(Touchpoint.occurred_at),
            *mine(Touchpoint.partner_id),
        )
        .group_by(Touchpoint.type)
    )
    for type_, n in touchpoints:
        slot("touchpoint", type_)["recorded"] = int(n)
    coupons = session.scalar(
        sa.select(sa.func.count())
        .select_from(Event)
        .join(
            PromotionCode,
            (PromotionCode.program_id == Event.program_id)
            & (PromotionCode.code == Event.promotion_code),
        )
        .where(*in_range(program_id, period), is_conversion(), *mine(PromotionCode.partner_id))
    )
    if coupons:
        slot("coupon", None)["recorded"] = int(coupons)
    credited = session.execute(
        sa.select(
            AttributionRow.touch_kind,
            Touchpoint.type,
            sa.func.count(),
            sa.func.count(sa.distinct(AttributionRow.event_id)),
        )
        .join(Event, Event.id == AttributionRow.event_id)
        .outerjoin(Touchpoint, Touchpoint.id == AttributionRow.touch_id)
        .where(*in_range(program_id, period), is_conversion(), *mine(AttributionRow.partner_id))
        .group_by(AttributionRow.touch_kind, Touchpoint.type)
    )
    for kind, type_, n, events in credited:
        slot(kind, type_ if kind == "touchpoint" else None).update(
            credited=int(n), credited_events=int(events)
        )
    total = sum(v["credited"] for v in mix.values())
    return [
        {
            "kind": kind,
            "type": type_,
            **counts,
            "credited_share": ratio(Fraction(counts["credited"], total) if total else Fraction(0)),
        }
        for (kind, type_), counts in sorted(mix.items(), key=lambda i: (i[0][0], i[0][1] or ""))
    ]


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
        sa.select(Event.refund_of, sa.func.sum(Event.amount))
        .where(Event.type == REFUND, Event.refund_of.in_(ids))
        .group_by(Event.refund_of)
    )
    refunded = {sale_id: int(total or 0) for sale_id, total in refunds}
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
