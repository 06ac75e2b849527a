"""Persisted attribution rows: the derived credit of one touch for one event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType


class AttributionRow(Base):
    """Derived, never edited: re-deriving an event deletes its unpaid rows and writes a new set
    in the same transaction, so an event never has two sets."""

    __tablename__ = "attributions"
    # On PostgreSQL the table is partitioned by program (migration 0009, ``partitions.py``):
    # its unique keys include ``program_id``.
    __table_args__ = (
        sa.UniqueConstraint("id", "program_id", name="uq_attributions_id_program_id"),
        sa.Index("ix_attributions_event_id", "event_id"),
        # partner first: within a partition program_id is one value (migration 0009)
        sa.Index("ix_attributions_partner_id_program_id", "partner_id", "program_id"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(IdType)
    program_id: Mapped[str] = mapped_column(IdType)
    event_id: Mapped[str] = mapped_column(IdType)
    partner_id: Mapped[str] = mapped_column(IdType)
    touch_id: Mapped[str] = mapped_column(IdType)
    """``clk_…`` for a click, ``tch_…`` for a touchpoint, ``cpn_…`` for a coupon's touch."""
    touch_kind: Mapped[str] = mapped_column(sa.String(16))
    weight: Mapped[str] = mapped_column(sa.Text)
    """The touch's exact share of the event, as a fraction ``"numerator/denominator"``."""
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    """Minor units of ``currency``; the amounts of an event's rows sum exactly to its amount."""
    credit: Mapped[int | None] = mapped_column(sa.BigInteger)
    """The partner's whole amount in the event, on the partner's first row of the event (its
    earliest credited touch, lowest ``seq``); NULL on its other rows. What a replay compares."""
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    model: Mapped[str] = mapped_column(sa.String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    config_version: Mapped[str | None] = mapped_column(IdType)
    engine_version: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
