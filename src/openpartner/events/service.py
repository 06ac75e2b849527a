"""Event ingest: validate, store once per idempotency key, attribute.

A retry with the same key and the same body returns the first response and creates nothing;
the same key with a different body is a 409. The request owns the transaction, so a 2xx means
the event is committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.attribution.service import derive_event
from openpartner.core.errors import Conflict, NotFound, OpenPartnerError, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.money import normalize_currency, parse_amount
from openpartner.core.time import ensure_utc, utc_now
from openpartner.deals.models import Deal
from openpartner.events.models import Event
from openpartner.events.schemas import CreditOut, EventIn, EventOut
from openpartner.identity.guards import check_identifier
from openpartner.programs.models import Program
from openpartner.settings import Settings

_EVENT_IN: TypeAdapter[EventIn] = TypeAdapter(EventIn)


@dataclass(frozen=True)
class Ingested:
    response: dict[str, Any]
    replayed: bool


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
    return key


def _existing(session: Session, program_id: str, key: str, digest: str) -> Ingested | None:
    found = session.scalar(
        sa.select(Event).where(Event.program_id == program_id, Event.external_id == key)
    )
    if found is None:
        return None
    if found.request_hash != digest:
        raise Conflict(
            f"The idempotency key {key!r} was used with a different request.",
            code="idempotency_conflict",
        )
    return Ingested(response=found.response, replayed=True)


def ingest(
    session: Session,
    program: Program,
    body: EventIn,
    key: str,
    settings: Settings,
    source: str = "api",
) -> Ingested:
    digest = request_hash(program.id, body)
    seen = _existing(session, program.id, key, digest)
    if seen is not None:
        return seen
    event = _build(session, program, body, key, digest, settings)
    event.source = source
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        # A concurrent request with the same key won the insert; answer as its retry.
        seen = _existing(session, program.id, key, digest)
        if seen is None:
            raise
        return seen
    credits = derive_event(session, event)
    event.response = render(event, credits)
    session.flush()
    return Ingested(response=event.response, replayed=False)


def _build(
    session: Session, program: Program, body: EventIn, key: str, digest: str, settings: Settings
) -> Event:
    now = utc_now()
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
    return Event(
        id=new_id("evt"),
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
        external_id=key,
        request_hash=digest,
        metadata_=body.metadata,
    )


def _sale_for_refund(session: Session, program_id: str, ref: str | None) -> Event:
    if not ref:
        raise ValidationFailed(
            "A refund must reference its sale (refund_of).",
            code="refund_of_required",
            errors=[{"loc": ["body", "refund_of"], "msg": "required", "type": "missing"}],
        )
    sale = session.scalar(
        sa.select(Event).where(
            Event.program_id == program_id,
            Event.type == "sale",
            sa.or_(Event.id == ref, Event.external_id == ref),
        )
    )
    if sale is None:
        raise NotFound(f"Sale {ref} not found.", code="unknown_sale")
    return sale


def _refunded(session: Session, sale_id: str) -> int:
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Event.amount), 0)).where(
            Event.refund_of == sale_id, Event.type == "refund"
        )
    )
    return int(total or 0)


def render(event: Event, credits: list[AttributionRow]) -> dict[str, Any]:
    by_partner: dict[str, int] = {}
    for row in credits:
        by_partner[row.partner_id] = by_partner.get(row.partner_id, 0) + row.amount
    out = EventOut(
        id=event.id,
        type=event.type,
        program_id=event.program_id,
        customer_id=event.customer_id,
        amount=event.amount,
        currency=event.currency,
        occurred_at=event.occurred_at,
        external_id=event.external_id,
        refund_of=event.refund_of,
        promotion_code=event.promotion_code,
        deal_id=event.deal_id,
        metadata=event.metadata_,
        attributed_to=[
            CreditOut(partner_id=p, amount=a, currency=event.currency)
            for p, a in sorted(by_partner.items())
        ],
    )
    return out.model_dump(mode="json")


def ingest_batch(
    session: Session, program_for_item: Any, items: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """Each item on its own: accepted, duplicate (same key, same body) or rejected with a
    reason. One bad item never sinks the others: each runs in its own savepoint."""
    results: list[dict[str, Any]] = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for index, raw in enumerate(items):
        try:
            body = _EVENT_IN.validate_python(raw)
            program = program_for_item(body.program_id)
            key = idempotency_key(body, None)
            with session.begin_nested():
                done = ingest(session, program, body, key, settings)
            status = "duplicate" if done.replayed else "accepted"
            results.append({"index": index, "status": status, "id": done.response["id"]})
        except ValidationError as exc:
            status = "rejected"
            results.append(
                {
                    "index": index,
                    "status": status,
                    "code": "validation_error",
                    "detail": "The event is not valid.",
                    "errors": [
                        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                        for e in exc.errors()
                    ],
                }
            )
        except OpenPartnerError as exc:
            status = "rejected"
            results.append(
                {"index": index, "status": status, "code": exc.code, "detail": exc.detail}
            )
        counts[status] += 1
    return {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": results,
    }
