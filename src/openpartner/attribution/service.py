"""Derive and persist the attribution of events. Re-deriving replaces the event's rows in the
same transaction, so an event never carries two sets of credit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.attribution.touches import TouchRecord, touches_for_event
from openpartner.commissions.service import sync_event
from openpartner.core.ids import new_id
from openpartner.events.models import Event
from openpartner.programs.models import Program

ENGINE_VERSION = "0"
CLOCK_SKEW = timedelta(minutes=5)
ATTRIBUTED_TYPES_EXCLUDED = frozenset({"refund"})


def _last_click(
    touches: list[TouchRecord], event: Event, window_days: int
) -> list[tuple[TouchRecord, Fraction]]:
    start = event.occurred_at - timedelta(days=window_days)
    eligible = [
        t
        for t in touches
        if not t.flagged
        and not t.partner_revoked
        and start <= t.at <= event.occurred_at + CLOCK_SKEW
    ]
    if not eligible:
        return []
    winner = max(eligible, key=lambda t: (t.at, t.seq, t.id))
    return [(winner, Fraction(1))]


def derive_event(session: Session, event: Event) -> list[AttributionRow]:
    """Replace the event's attribution with a fresh derivation; returns the new rows."""
    session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id == event.id))
    if event.type in ATTRIBUTED_TYPES_EXCLUDED:
        sync_event(session, event)
        return []
    program = session.get_one(Program, event.program_id)
    credits = _last_click(touches_for_event(session, event), event, program.attribution_window_days)
    rows = [
        AttributionRow(
            id=new_id("att"),
            program_id=event.program_id,
            event_id=event.id,
            partner_id=touch.partner_id,
            touch_id=touch.id,
            touch_kind=touch.kind,
            weight=f"{weight.numerator}/{weight.denominator}",
            amount=event.amount or 0,
            currency=event.currency,
            model="last_click",
            params={},
            config_version=None,
            engine_version=ENGINE_VERSION,
        )
        for touch, weight in credits
    ]
    session.add_all(rows)
    session.flush()
    sync_event(session, event)
    return rows


def derive_events(session: Session, events: Iterable[Event]) -> int:
    """Re-derive several events; returns how many end up attributed to at least one partner."""
    return sum(1 for event in events if derive_event(session, event))


def rederive_customer(session: Session, program_id: str, customer_id: str) -> int:
    """Late binding: a new identify re-derives the customer's earlier events, exactly once each."""
    events = session.scalars(
        sa.select(Event)
        .where(
            Event.program_id == program_id,
            Event.customer_id == customer_id,
            Event.type.not_in(ATTRIBUTED_TYPES_EXCLUDED),
        )
        .order_by(Event.seq)
    )
    return derive_events(session, events)
