from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType


class RouterInvalidation(Base):
    """ "This link or program changed": written in the same transaction as the change, polled by
    every router process to refresh its in-process link cache. Rows are pruned after an hour;
    a router that was cut off longer than that reloads its whole cache."""

    __tablename__ = "router_invalidations"
    # AUTOINCREMENT on SQLite: a pruned table must never hand out a sequence number again,
    # or routers would skip changes below their watermark.
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    """``link`` or ``program``."""
    ref_id: Mapped[str] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
