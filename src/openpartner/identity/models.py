from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType

_BOUND = "status = 'bound' AND customer_id IS NOT NULL AND {} IS NOT NULL"


class IdentityEdge(Base):
    """One observation that identifiers belong together. Append-only: a conflicting bind is
    recorded with ``status='conflict'`` and ignored by resolution, never overwriting the first."""

    __tablename__ = "identity_edges"
    __table_args__ = (
        sa.Index("ix_identity_edges_program_id_click_id", "program_id", "click_id"),
        sa.Index("ix_identity_edges_program_id_visitor_id", "program_id", "visitor_id"),
        sa.Index("ix_identity_edges_program_id_customer_id", "program_id", "customer_id"),
        # A click id (a visitor id) is bound to one customer: of two racing binds, one wins.
        *(
            sa.Index(
                f"uq_identity_edges_bound_{identifier}",
                "program_id",
                identifier,
                unique=True,
                postgresql_where=sa.text(_BOUND.format(identifier)),
                sqlite_where=sa.text(_BOUND.format(identifier)),
            )
            for identifier in ("click_id", "visitor_id")
        ),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(IdType, unique=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    click_id: Mapped[str | None] = mapped_column(IdType)
    visitor_id: Mapped[str | None] = mapped_column(sa.String(128))
    customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    email_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """HMAC-SHA-256 of the normalised email under the server secret; never the email."""
    source: Mapped[str] = mapped_column(sa.String(16))
    """``api``, ``browser``, ``stripe`` or ``coupon``."""
    status: Mapped[str] = mapped_column(sa.String(16), default="bound")
    """``bound`` (used by resolution) or ``conflict`` (recorded, ignored)."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
