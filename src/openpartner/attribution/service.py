"""Derive and persist the attribution of events with the exact engine, under the config
version in force at each event's time. Re-deriving replaces the event's rows in the same
transaction, so an event never carries two sets of credit; the commissions follow.

Set-based: :func:`attribute` derives any number of events from one query for their touches,
and :func:`store` writes all their rows in one statement, so a batch of a thousand events costs
a handful of round trips."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.configs import Rules
from openpartner.attribution.engine import (
    CLOCK_SKEW_GRACE,
    ENGINE_VERSION,
    check_window,
)
from openpartner.attribution.engine import attribute as engine_attribute
from openpartner.attribution.inputs import Conversion as EngineConversion
from openpartner.attribution.late_changes import hold_shared
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.rows import engine_touches, rows_from
from openpartner.attribution.touches import Conversion, touches_for_events
from openpartner.commissions.service import sync_event, sync_events
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.db import bulk
from openpartner.events.models import Event

ATTRIBUTED_TYPES_EXCLUDED = frozenset({"refund"})
_ATTRIBUTIONS = cast(sa.Table, AttributionRow.__table__)
_CHUNK = 500  # ids per IN (...) when deleting, well under every database's parameter limit


def attribute(
    session: Session, events: Sequence[Conversion], rules: Rules | None = None
) -> list[list[dict[str, Any]]]:
    """The attribution rows (column values) each event should carry, in the events' order.
    Reads only: one query for the touches of all the events; :func:`store` writes the rows."""
    rules = rules or Rules(session)
    attributed = [e for e in events if e.type not in ATTRIBUTED_TYPES_EXCLUDED]
    # Before reading rules or touches: never between a replay's write and its commit.
    hold_shared(session, (e.program_id for e in attributed))
    rules.load_deals(e.deal_id for e in attributed)
    touches = iter(touches_for_events(session, attributed))
    now = utc_now()
    out: list[list[dict[str, Any]]] = []
    for event in events:
        if event.type in ATTRIBUTED_TYPES_EXCLUDED:
            out.append([])
            continue
        spec, window, config = rules.for_event(event.program_id, event.occurred_at, event.deal_id)
        currency = event.currency or rules.program(event.program_id).currency
        # Touches the engine would exclude earn nothing and change no one's weight: drop them
        # here (the same tests, in the engine's order) so the engine sees only eligible ones.
        latest = event.occurred_at + CLOCK_SKEW_GRACE
        earliest = event.occurred_at - timedelta(days=check_window(window))
        eligible = [
            r
            for r in next(touches)
            if earliest <= r.at <= latest and not r.flagged and not r.partner_revoked
        ]
        config_id = config.id if config else None
        if len(eligible) == 1:
            # One eligible touch earns 100 % under every model: the engine's result, directly.
            (touch,) = eligible
            out.append(
                [
                    {
                        "id": new_id("att"),
                        "program_id": event.program_id,
                        "event_id": event.id,
                        "partner_id": touch.partner_id,
                        "touch_id": touch.id,
                        "touch_kind": touch.kind,
                        "weight": "1/1",
                        "amount": event.amount or 0,
                        "credit": event.amount or 0,
                        "currency": event.currency,
                        "model": spec.name,
                        "params": spec.params_for_storage(),
                        "config_version": config_id,
                        "engine_version": ENGINE_VERSION,
                        "created_at": now,
                    }
                ]
            )
            continue
        result = engine_attribute(
            engine_touches(eligible),
            EngineConversion(at=event.occurred_at, amount=event.amount or 0, currency=currency),
            spec,
            window,
        )
        rows = rows_from(
            result,
            event_id=event.id,
            program_id=event.program_id,
            currency=event.currency,
            config_id=config_id,
        )
        for row in rows:
            row["created_at"] = now
        out.append(rows)
    return out


def store(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert attribution rows from :func:`attribute`, all in one statement."""
    bulk.insert_rows(session, _ATTRIBUTIONS, list(rows))


def lock_events(session: Session, event_ids: Sequence[str]) -> None:
    """Re-deriving an event deletes its rows and inserts new ones. Two transactions doing that
    at once (two identifies of one customer, say) would each delete only the rows it can see and
    leave two sets, so each first locks the events' rows; in ingest order, so that two of them
    never wait for each other in opposite orders. SQLite serializes writers already."""
    if event_ids and bulk.is_postgresql(session):
        session.execute(
            sa.select(Event.id)
            .where(bulk.one_of(Event.id, "ids", True))
            .order_by(Event.seq)
            .with_for_update(),
            {"ids": list(event_ids)},
        )


def derive_event(session: Session, event: Event) -> list[AttributionRow]:
    """Replace the event's attribution with a fresh derivation and bring its commissions in
    line; returns the new rows."""
    hold_shared(session, [event.program_id])  # before deleting: see late_changes
    lock_events(session, [event.id])
    session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id == event.id))
    rows = attribute(session, [event])[0]
    store(session, rows)
    sync_event(session, event)
    return [AttributionRow(**row) for row in rows]


def derive_events(session: Session, events: Iterable[Event]) -> int:
    """Re-derive several events; returns how many end up attributed to at least one partner."""
    events = list(events)
    ids = [e.id for e in events]
    hold_shared(session, (e.program_id for e in events))  # before deleting: see late_changes
    lock_events(session, ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(sa.delete(AttributionRow).where(AttributionRow.event_id.in_(chunk)))
    derived = attribute(session, events)
    store(session, (row for rows in derived for row in rows))
    sync_events(session, ids)
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
