from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.core.time import utc_now
from openpartner.db.base import Base, JSONType


class StripeEvent(Base):
    """Each Stripe event stored once under Stripe's own id: a replayed delivery changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    handled_at: Mapped[datetime | None]
