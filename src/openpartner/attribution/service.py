"""Derive and persist the attribution of events. Re-deriving replaces the event's rows in the
same transaction, so an event never carries two sets of credit.

Set-based: :func:`attribute` derives any number of events from one query for their touches,
and :func:`store` writes all their rows in one statement, so a batch of a thousand events costs
a handful of round trips."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from fractions import Fraction
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.attribution.touches import Conversion, TouchRecord, touches_for_events
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.events import bulk
from openpartner.events.models import Event
from openpartner.programs.models import Program

ENGINE_VERSION = "0"
CLOCK_SKEW = timedelta(minutes=5)
ATTRIBUTED_TYPES_EXCLUDED = frozenset({"refund"})
_ATTRIBUTIONS = cast(sa.Table, AttributionRow.__table__)
_CHUNK = 500  # ids per IN (...) when deleting, well under every database's parameter limit


def _last_click(
    touches: list[TouchRecord], event: Conversion, window_days: int
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


def attribute(session: Session, events: Sequence[Conversion]) -> list[list[dict[str, Any]]]:
    """The attribution rows (column values) each event should carry, in the events' order.
    Reads only: one query for the touches of all the events; :func:`store` writes the rows."""
    attributed = [e for e in events if e.type not in ATTRIBUTED_TYPES_EXCLUDED]
    touches = iter(touches_for_events(session, attributed))
    windows = {
        program_id: session.get_one(Program, program_id).attribution_window_days
        for program_id in {e.program_id for e in attributed}
    }
    now = utc_now()
    out: list[list[dict[str, Any]]] = []
    for event in events:
        if event.type in ATTRIBUTED_TYPES_EXCLUDED:
            out.append([])
            continue
        credits = _last_click(next(touches), event, windows[event.program_id])
        out.append(
            [
                {
                    "id": new_id("att"),
                    "program_id": event.program_id,
                    "event_id": event.id,
                    "partner_id": touch.partner_id,
                    "touch_id": touch.id,
                    "touch_kind": touch.kind,
                    "weight": f"{weight.numerator}/{weight.denominator}",
                    "amount": event.amount or 0,
                    "currency": event.currency,
                    "model": "last_click",
                    "params": {},
                    "config_version": None,
                    "engine_version": ENGINE_VERSION,
                    "created_at": now,
                }
                for touch, weight in credits
            ]
        )
    return out


def store(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert attribution rows from :func:`attribute`, all in one statement."""
    bulk.insert_rows(session, _ATTRIBUTIONS, list(rows))


def derive_event(session: Session, event: Event) -> list[AttributionRow]:
    """Replace the event's attribution with a fresh derivation; returns the new rows."""
    session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id == event.id))
    rows = attribute(session, [event])[0]
    store(session, rows)
    return [AttributionRow(**row) for row in rows]


def derive_events(session: Session, events: Iterable[Event]) -> int:
    """Re-derive several events; returns how many end up attributed to at least one partner."""
    events = list(events)
    ids = [e.id for e in events]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id.in_(chunk)))
    derived = attribute(session, events)
    store(session, (row for rows in derived for row in rows))
    return sum(1 for rows in derived if rows)


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
