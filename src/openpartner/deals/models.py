from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType

TOUCHPOINT_TYPES = ("referral", "intro", "demo", "support", "closer", "other")


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (sa.UniqueConstraint("program_id", "external_id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(255))
    """The merchant's own deal reference (CRM id)."""
    customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    model: Mapped[str | None] = mapped_column(sa.String(32))
    """Attribution model for this deal; null means the program's."""
    closed_at: Mapped[datetime | None]
    event_id: Mapped[str | None] = mapped_column(IdType)
    """The ``sale`` event the close produced."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Touchpoint(Base):
    """A partner's touch on a deal or customer (B2B). Append-only; a touch like a click."""

    __tablename__ = "touchpoints"
    __table_args__ = (
        sa.Index("ix_touchpoints_program_id_customer_id", "program_id", "customer_id"),
        sa.Index("ix_touchpoints_deal_id", "deal_id"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(IdType, unique=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"))
    deal_id: Mapped[str | None] = mapped_column(IdType)
    customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(16))
    occurred_at: Mapped[datetime]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
