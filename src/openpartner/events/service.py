"""Event ingest: validate, store once per idempotency key, attribute.

A retry with the same key and the same body returns the first response and creates nothing;
the same key with a different body is a 409. The request owns the transaction, so a 2xx means
the event is committed.

Set-based: :func:`ingest_new` stores any number of events with a few statements whatever their
number (touches of all of them, one ``INSERT ... ON CONFLICT DO NOTHING``, their attribution
rows, the stored rows of keys already taken). Single events and batches go through it.
Concurrency: the unique ``(program_id, external_id)`` decides who stores a key; the loser of a
race re-reads the winner's row and answers as a retry would. Rows are inserted in key order, so
two batches with overlapping keys wait for each other in the same order and never deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from openpartner.attribution import service as attribution
from openpartner.attribution.late_changes import hold_shared
from openpartner.commissions.service import programs_with_commissions, sync_events
from openpartner.core.errors import Conflict, NotFound, OpenPartnerError, ValidationFailed
from openpartner.core.ids import new_id, new_ids
from openpartner.core.money import normalize_currency, parse_amount
from openpartner.core.text import bad_character
from openpartner.core.time import ensure_utc, utc_now
from openpartner.db import bulk
from openpartner.db.sums import combine, money_sum
from openpartner.deals.models import Deal
from openpartner.events.models import Event
from openpartner.events.program_rules import Known
from openpartner.events.schemas import EventIn
from openpartner.identity.guards import check_identifier
from openpartner.programs.models import Program
from openpartner.settings import Settings

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
_JSON_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
_EVENTS = cast(sa.Table, Event.__table__)


@dataclass(frozen=True)
class Ingested:
    response: dict[str, Any]
    replayed: bool


@dataclass(slots=True)
class NewEvent:
    """The column values of an event about to be inserted (cheaper than an ORM object, and
    what attribution reads of a conversion)."""

    id: str
    program_id: str
    type: str
    customer_id: str | None
    deal_id: str | None
    amount: int | None
    currency: str | None
    refund_of: str | None
    promotion_code: str | None
    occurred_at: datetime
    received_at: datetime
    external_id: str
    request_hash: str
    source: str
    metadata: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Pending:
    """One event to ingest: its program, validated body and idempotency key."""

    program: Program
    body: EventIn
    key: str
    digest: str = ""


def request_hash(program_id: str, body: EventIn) -> str:
    canonical = body.model_dump(mode="json", exclude={"external_id", "program_id"})
    raw = json.dumps([program_id, canonical], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def idempotency_key(body: EventIn, header: str | None) -> str:
    header = header.strip() if header else None
    if header and body.external_id and header != body.external_id:
        raise ValidationFailed(
            "Idempotency-Key and external_id differ.", code="idempotency_key_mismatch"
        )
    key = header or body.external_id
    if not key:
        raise ValidationFailed(
            "Every event needs an idempotency key: the Idempotency-Key header or external_id.",
            code="idempotency_key_required",
            errors=[{"loc": ["body", "external_id"], "msg": "required", "type": "missing"}],
        )
    if len(key) > 255:
        raise ValidationFailed("The idempotency key is too long.", code="idempotency_key_too_long")
    if bad := bad_character(key):  # the header's (the body's was checked with the body)
        raise ValidationFailed(
            f"The idempotency key holds the character {bad}.", code="control_character"
        )
    return key


def needs_lookups(body: EventIn) -> bool:
    """Refunds and deal sales are validated against the database (the sale, what it has
    refunded, the deal); every other event is validated from its body alone."""
    return body.type == "refund" or body.deal_id is not None


def ingest(
    session: Session,
    program: Program,
    body: EventIn,
    key: str,
    settings: Settings,
    source: str = "api",
    known: Known | None = None,
) -> Ingested:
    """One event. ``known``: its program as a group already read it (program_rules.py)."""
    item = Pending(program, body, key)
    if needs_lookups(body):
        item.digest = request_hash(program.id, body)
        seen = _stored(session, [item]).get((program.id, key))
        if seen is not None:
            return _replay(key, item.digest, *seen)
        event = build(session, item, settings, utc_now(), source)
        outcome = ingest_new(session, [item], [event], known)[0]
    else:
        outcome = ingest_many(session, [item], settings, source, known)[0]
    if isinstance(outcome, OpenPartnerError):
        raise outcome
    return outcome


def ingest_many(
    session: Session,
    items: Sequence[Pending],
    settings: Settings,
    source: str = "api",
    known: Known | None = None,
) -> list[Ingested | OpenPartnerError]:
    """Ingest events validated from their bodies alone (not :func:`needs_lookups`), answered
    in order exactly as one-by-one ingest would: a key already stored (before, or by an
    earlier item) is a replay or a conflict, whether or not the body is valid."""
    now = utc_now()
    events: list[NewEvent | OpenPartnerError] = []
    for item, event_id in zip(items, new_ids("evt", len(items)), strict=True):
        item.digest = request_hash(item.program.id, item.body)
        try:
            events.append(build(session, item, settings, now, source, event_id))
        except OpenPartnerError as exc:
            events.append(exc)
    return ingest_new(session, items, events, known)


def ingest_new(
    session: Session,
    items: Sequence[Pending],
    events: Sequence[NewEvent | OpenPartnerError],
    known: Known | None = None,
) -> list[Ingested | OpenPartnerError]:
    """Store the valid events whose key is new, with their attribution, and answer every item.
    ``events[i]`` is ``items[i]`` built, or the error that building it raised; ``known``, when
    given, has the rules of every item's program already read."""
    first: dict[tuple[str, str], int] = {}
    fresh: list[NewEvent] = []
    for i, event in enumerate(events):
        if isinstance(event, NewEvent) and first.setdefault(_key(event), i) == i:
            fresh.append(event)
    credits = attribution.attribute(session, fresh, known.rules if known else None)
    for event, rows in zip(fresh, credits, strict=True):
        event.response = render(event, rows)
    inserted = _insert(session, fresh)
    attribution.store(
        session,
        (
            row
            for e, rows in zip(fresh, credits, strict=True)
            if _key(e) in inserted
            for row in rows
        ),
    )
    stored_now = [e for e in fresh if _key(e) in inserted]
    programs = {e.program_id for e in stored_now}
    ruled = (
        programs & known.with_commissions if known else programs_with_commissions(session, programs)
    )
    if ruled:
        sync_events(session, [e.id for e in stored_now if e.program_id in ruled])
    # What each key holds now: the row one of these items stored (and which), or an older one.
    stored = {
        _key(e): (e.request_hash, e.response, first[_key(e)]) for e in fresh if _key(e) in inserted
    }
    others = [item for item in items if (item.program.id, item.key) not in stored]
    for key, (digest, response) in _stored(session, others).items():
        stored[key] = (digest, response, -1)
    out: list[Ingested | OpenPartnerError] = []
    for i, (item, event) in enumerate(zip(items, events, strict=True)):
        seen = stored.get((item.program.id, item.key))
        if seen is not None and seen[2] == i:
            out.append(Ingested(response=seen[1], replayed=False))
        elif seen is not None and seen[2] < i:
            try:
                out.append(_replay(item.key, item.digest, seen[0], seen[1]))
            except Conflict as exc:
                out.append(exc)
        elif isinstance(event, OpenPartnerError):
            out.append(event)
        else:  # cannot happen: a key that lost the insert is held by the winner's row
            raise RuntimeError(f"event {item.key!r} was neither stored nor found")
    return out


def _key(event: NewEvent) -> tuple[str, str]:
    return event.program_id, event.external_id


def _replay(key: str, digest: str, stored_digest: str, response: dict[str, Any]) -> Ingested:
    if stored_digest != digest:
        raise Conflict(
            f"The idempotency key {key!r} was used with a different request.",
            code="idempotency_conflict",
        )
    return Ingested(response=response, replayed=True)


def _stored(
    session: Session, items: Sequence[Pending]
) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """``(program_id, key) -> (request_hash, response)`` of the items' keys already stored."""
    keys: dict[str, set[str]] = {}
    for item in items:
        keys.setdefault(item.program.id, set()).add(item.key)
    found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    if not keys:
        return found
    stmt = _STORED[bulk.is_postgresql(session)]
    for program_id, wanted in keys.items():
        for r in session.execute(stmt, {"program_id": program_id, "keys": sorted(wanted)}):
            found[(r.program_id, r.external_id)] = (r.request_hash, r.response)
    return found


# Built once per dialect (PostgreSQL matches an array, SQLite an expanding IN).
_STORED = {
    postgres: sa.select(
        Event.program_id, Event.external_id, Event.request_hash, Event.response
    ).where(
        Event.program_id == sa.bindparam("program_id"),
        bulk.one_of(Event.external_id, "keys", postgres),
    )
    for postgres in (False, True)
}


def _insert(session: Session, events: Sequence[NewEvent]) -> set[tuple[str, str]]:
    """Insert the events whose key is free, in key order (see the module docstring); returns
    the keys inserted. A key taken meanwhile by another transaction is skipped, not an error."""
    rows = [
        {
            "id": e.id,
            "program_id": e.program_id,
            "type": e.type,
            "customer_id": e.customer_id,
            "deal_id": e.deal_id,
            "amount": e.amount,
            "currency": e.currency,
            "refund_of": e.refund_of,
            "promotion_code": e.promotion_code,
            "occurred_at": e.occurred_at,
            "received_at": e.received_at,
            "external_id": e.external_id,
            "request_hash": e.request_hash,
            "source": e.source,
            "metadata": e.metadata,
            "response": e.response,
        }
        for e in sorted(events, key=_key)
    ]
    inserted = bulk.insert_rows(
        session,
        _EVENTS,
        rows,
        skip_conflicts_on=("program_id", "external_id"),
        returning=("program_id", "external_id"),
    )
    return {(r.program_id, r.external_id) for r in inserted}


def build(
    session: Session,
    item: Pending,
    settings: Settings,
    now: datetime,
    source: str,
    event_id: str | None = None,
) -> NewEvent:
    """Validate one event into the row to insert; raises the error a client should see. Only
    :func:`needs_lookups` events read the database."""
    program, body = item.program, item.body
    occurred_at = ensure_utc(body.occurred_at) if body.occurred_at else now
    if occurred_at < now - timedelta(days=settings.event_max_backdate_days):
        raise ValidationFailed(
            f"occurred_at is more than {settings.event_max_backdate_days} days in the past.",
            code="occurred_at_too_old",
        )
    if occurred_at > now + timedelta(seconds=settings.event_max_future_seconds):
        raise ValidationFailed("occurred_at is in the future.", code="occurred_at_in_future")
    customer_id = check_identifier(body.customer_id, "customer_id")
    currency = normalize_currency(body.currency) if body.currency else None
    amount: int | None = None
    refund_of: str | None = None
    if body.type == "refund":
        # The derivation lock before the sale's row lock, in the order every deriver takes them
        # (attribution/late_changes.py).
        hold_shared(session, [program.id])
        sale = _sale_for_refund(session, program.id, body.refund_of)
        refund_of, customer_id = sale.id, sale.customer_id
        if currency is not None and currency != sale.currency:
            raise ValidationFailed("A refund is in the sale's currency.", code="currency_mismatch")
        currency = sale.currency
        remaining = (sale.amount or 0) - _refunded(session, sale.id)
        amount = (
            parse_amount(body.amount, currency or program.currency)
            if body.amount is not None
            else remaining
        )
        if amount <= 0 or amount > remaining:
            raise ValidationFailed(
                f"The refund must be between 1 and the {remaining} minor units not yet refunded.",
                code="refund_exceeds_sale",
            )
    elif body.amount is not None:
        currency = currency or program.currency
        amount = parse_amount(body.amount, currency)
        if amount < 0:
            raise ValidationFailed(
                "Amounts are not negative; send a refund.", code="invalid_amount"
            )
    elif body.type == "sale":
        raise ValidationFailed(
            "A sale needs an amount.",
            code="amount_required",
            errors=[{"loc": ["body", "amount"], "msg": "required", "type": "missing"}],
        )
    if body.deal_id is not None:
        deal = session.get(Deal, body.deal_id)
        if deal is None or deal.program_id != program.id:
            raise NotFound(f"Deal {body.deal_id} not found.")
    if customer_id is None and body.promotion_code is None and body.deal_id is None:
        raise ValidationFailed(
            "An event needs a customer_id (or a promotion_code or deal_id).",
            code="customer_required",
            errors=[{"loc": ["body", "customer_id"], "msg": "required", "type": "missing"}],
        )
    return NewEvent(
        id=event_id or new_id("evt"),
        program_id=program.id,
        type=body.type,
        customer_id=customer_id,
        deal_id=body.deal_id,
        amount=amount,
        currency=currency,
        refund_of=refund_of,
        promotion_code=body.promotion_code.strip().upper() if body.promotion_code else None,
        occurred_at=occurred_at,
        received_at=now,
        external_id=item.key,
        request_hash=item.digest,
        source=source,
        metadata=body.metadata,
    )


def _sale_for_refund(session: Session, program_id: str, ref: str | None) -> Event:
    if not ref:
        raise ValidationFailed(
            "A refund must reference its sale (refund_of).",
            code="refund_of_required",
            errors=[{"loc": ["body", "refund_of"], "msg": "required", "type": "missing"}],
        )
    sale = session.scalar(
        sa.select(Event)
        .where(
            Event.program_id == program_id,
            Event.type == "sale",
            sa.or_(Event.id == ref, Event.external_id == ref),
        )
        # Two refunds of one sale at once must not both see the same amount left: lock the sale
        # (PostgreSQL; SQLite transactions are already serialized by BEGIN IMMEDIATE).
        .with_for_update()
    )
    if sale is None:
        raise NotFound(f"Sale {ref} not found.", code="unknown_sale")
    return sale


def _refunded(session: Session, sale_id: str) -> int:
    row = session.execute(
        sa.select(*money_sum(Event.amount)).where(
            Event.refund_of == sale_id, Event.type == "refund"
        )
    ).one()
    return combine(*row)


def render(event: NewEvent, credits: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The event as the API shows it (``EventOut``, JSON-ready), built directly: this runs
    for every event ingested, and a pydantic model round trip would cost more than the rest."""
    by_partner: dict[str, int] = {}
    for row in credits:
        by_partner[row["partner_id"]] = by_partner.get(row["partner_id"], 0) + row["amount"]
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "program_id": event.program_id,
        "customer_id": event.customer_id,
        "amount": event.amount,
        "currency": event.currency,
        "occurred_at": _DATETIME.dump_python(event.occurred_at, mode="json"),
        "external_id": event.external_id,
        "refund_of": event.refund_of,
        "promotion_code": event.promotion_code,
        "deal_id": event.deal_id,
        "metadata": _JSON_OBJECT.dump_python(event.metadata, mode="json") if event.metadata else {},
        "attributed_to": [
            {"partner_id": p, "amount": a, "currency": event.currency}
            for p, a in sorted(by_partner.items())
        ],
    }
