from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType

CONVERSION_TYPES = frozenset({"lead", "signup", "sale"})


class Event(Base):
    """A conversion or other business event from the merchant (or Stripe). Append-only."""

    __tablename__ = "events"
    __table_args__ = (
        sa.UniqueConstraint("program_id", "external_id"),
        sa.Index("ix_events_program_id_customer_id", "program_id", "customer_id"),
        sa.Index("ix_events_program_id_occurred_at", "program_id", "occurred_at"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(IdType, unique=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    type: Mapped[str] = mapped_column(sa.String(64))
    """``lead``, ``signup``, ``sale``, ``refund`` or a custom type."""
    customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    deal_id: Mapped[str | None] = mapped_column(IdType, index=True)
    amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    """Minor units of ``currency``; refunds carry a positive amount refunded."""
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    refund_of: Mapped[str | None] = mapped_column(IdType, index=True)
    """For refunds: the id of the sale being refunded."""
    promotion_code: Mapped[str | None] = mapped_column(sa.String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    external_id: Mapped[str] = mapped_column(sa.String(255))
    """The merchant's idempotency key, unique per program."""
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    """SHA-256 of the canonical request: the same key with a different body is a 409."""
    source: Mapped[str] = mapped_column(sa.String(16), default="api")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """The first response: a retry with the same key gets exactly this back."""
