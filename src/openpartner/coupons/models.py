from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType


class PromotionCode(Base):
    """A code (as customers type it, e.g. ``ADA20``) owned by a partner. A sale carrying it is
    attributed to the partner through a synthetic ``coupon`` touch, with no click needed."""

    __tablename__ = "promotion_codes"
    __table_args__ = (sa.UniqueConstraint("program_id", "code"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(64))
    """Stored upper-case; matching is case-insensitive."""
    stripe_promotion_code_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
