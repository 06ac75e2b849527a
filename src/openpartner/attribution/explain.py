"""Attribution on the fly: explain an event's credit, or compute a what-if under any model,
without writing anything."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.configs import AttributionConfig, Rules
from openpartner.attribution.engine import Attribution, attribute
from openpartner.attribution.inputs import Conversion
from openpartner.attribution.models import ModelSpec, parse_model
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.rows import engine_touches
from openpartner.attribution.touches import touches_for_event
from openpartner.core.ratios import fraction_str, ratio
from openpartner.events.models import Event


def evaluate(
    session: Session,
    event: Event,
    *,
    spec: ModelSpec | None = None,
    window_days: int | None = None,
) -> tuple[Attribution, AttributionConfig | None]:
    rules = Rules(session)
    program = rules.program(event.program_id)
    in_force, window, config = rules.for_event(event.program_id, event.occurred_at, event.deal_id)
    conversion = Conversion(
        at=event.occurred_at,
        amount=event.amount or 0,
        currency=event.currency or program.currency,
    )
    touches = engine_touches(touches_for_event(session, event))
    result = attribute(touches, conversion, spec or in_force, window_days or window)
    return result, config


def parse_what_if(model: str | None, params: Mapping[str, Any] | None) -> ModelSpec | None:
    return parse_model(model, params or {}) if model else None


def render(result: Attribution, config: AttributionConfig | None) -> dict[str, Any]:
    """Touches considered (with weights), those excluded and why, and each partner's share."""
    conv = result.conversion
    return {
        "model": result.spec.name,
        "params": result.spec.params_for_storage(),
        "window_days": result.window_days,
        "config_version": config.id if config else None,
        "engine_version": result.engine_version,
        "amount": conv.amount,
        "currency": conv.currency,
        "attributed": result.attributed,
        "considered": [
            {
                "touch_id": w.touch.id,
                "kind": w.touch.kind,
                "partner_id": w.touch.partner_id,
                "at": w.touch.at.isoformat(),
                "role": w.touch.role,
                "weight": ratio(w.weight),
            }
            for w in result.touches
        ],
        "excluded": [
            {
                "touch_id": e.touch.id,
                "kind": e.touch.kind,
                "partner_id": e.touch.partner_id,
                "at": e.touch.at.isoformat(),
                "reason": e.reason,
            }
            for e in result.excluded
        ],
        "partners": [
            {
                "partner_id": c.partner_id,
                "share": ratio(c.weight),
                "amount": c.amount,
                "currency": conv.currency,
                "touches": list(c.touch_ids),
                "roles": sorted(
                    {
                        w.touch.role or w.touch.kind
                        for w in result.touches
                        if w.touch.id in c.touch_ids
                    }
                ),
            }
            for c in result.credits
        ],
    }


def stored_credits(session: Session, event_id: str) -> list[dict[str, Any]]:
    """What is persisted for the event, summed per partner (the record commissions use)."""
    rows = session.scalars(
        sa.select(AttributionRow)
        .where(AttributionRow.event_id == event_id)
        .order_by(AttributionRow.seq)
    ).all()
    per_partner: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = per_partner.setdefault(
            row.partner_id,
            {
                "partner_id": row.partner_id,
                "amount": 0,
                "currency": row.currency,
                "weight": Fraction(0),
                "touches": [],
                "model": row.model,
                "config_version": row.config_version,
                "engine_version": row.engine_version,
            },
        )
        entry["amount"] += row.amount
        num, den = row.weight.split("/")
        entry["weight"] += Fraction(int(num), int(den))
        entry["touches"].append(row.touch_id)
    out = []
    for entry in per_partner.values():
        entry["weight"] = fraction_str(entry["weight"])
        out.append(entry)
    return out
