"""Touch mix: touches recorded in a range (clicks, touchpoints per type, promotion-code uses)
next to the touches credited on the range's conversions (attribution rows per kind and type)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.analytics.period import Period
from openpartner.analytics.revenue import in_range, is_conversion
from openpartner.attribution.records import AttributionRow
from openpartner.clicks.models import Click
from openpartner.core.ratios import ratio
from openpartner.coupons.models import PromotionCode
from openpartner.deals.models import Touchpoint
from openpartner.events.models import Event


def touch_mix(
    session: Session, program_id: str, period: Period, partner_id: str | None = None
) -> list[dict[str, Any]]:
    """The program's touch mix, or one partner's."""
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
