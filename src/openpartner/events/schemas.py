from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from openpartner.api.schemas import Metadata, RequestModel, ResponseModel, Timestamp

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


class EventIn(RequestModel):
    type: str = Field(pattern=EVENT_TYPE_PATTERN)
    """``lead``, ``signup``, ``sale``, ``refund`` or a custom type (lower-case)."""
    program_id: str | None = Field(default=None, max_length=32)
    customer_id: str | None = Field(default=None, max_length=255)
    amount: int | str | None = Field(default=None)
    """Minor units (``1999``) or an exact decimal string (``"19.99"``)."""
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    occurred_at: Timestamp | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    """The idempotency key (or send the ``Idempotency-Key`` header)."""
    refund_of: str | None = Field(default=None, max_length=255)
    """For refunds: the sale's event id or its external_id."""
    promotion_code: str | None = Field(default=None, max_length=64)
    deal_id: str | None = Field(default=None, max_length=32)
    metadata: Metadata = Field(default_factory=dict)


class BatchIn(RequestModel):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    """Each item is an event as for ``POST /v1/events``, with its own ``external_id``."""

    checked_per_item: ClassVar[frozenset[str]] = frozenset({"events"})


class CreditOut(ResponseModel):
    partner_id: str
    amount: int
    currency: str | None


class EventOut(ResponseModel):
    id: str
    object: str = "event"
    type: str
    program_id: str
    customer_id: str | None
    amount: int | None
    currency: str | None
    occurred_at: datetime
    external_id: str
    refund_of: str | None
    promotion_code: str | None
    deal_id: str | None
    metadata: dict[str, Any]
    attributed_to: list[CreditOut]


class EventCommissionOut(ResponseModel):
    """What one partner earned for the event, read when asked (not stored with the event)."""

    partner_id: str
    credit: int
    """The partner's attributed amount of the event now (minor units of its currency)."""
    commission_id: str | None
    amount: int | None
    currency: str | None
    status: str | None
    counts: bool
    """False when there is no commission, or it was reversed."""
    reason: str | None
    """Why no commission: ``no_rule``, ``not_eligible`` or ``nothing_earned``
    (``commissions/outcome.py``); null when there is one."""
    detail: str | None


class EventDetailOut(EventOut):
    commissions: list[EventCommissionOut]
    """Per partner credited (or holding a commission): its commission, or why it has none."""


class BatchItemOut(ResponseModel):
    index: int
    status: str
    """``accepted``, ``duplicate`` or ``rejected``."""
    id: str | None = None
    code: str | None = None
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchOut(ResponseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemOut]
