from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.db.base import Base, IdType, JSONType, Timestamps


class Program(Timestamps, Base):
    __tablename__ = "programs"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    currency: Mapped[str] = mapped_column(sa.String(3))
    default_destination_url: Mapped[str] = mapped_column(sa.String(2048))
    allowed_domains: Mapped[list[str]] = mapped_column(JSONType)
    """Hosts a link may redirect to; a leading ``*.`` allows subdomains. No open redirects."""
    allowed_origins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    """Browser origins allowed to use this program's publishable keys (``https://shop.example``)."""
    attribution_window_days: Mapped[int] = mapped_column(default=60)
    attribution_model: Mapped[str] = mapped_column(sa.String(32), default="last_click")
    attribution_params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Current model parameters; the history lives in ``attribution_configs``."""
    cookie_lifetime_days: Mapped[int] = mapped_column(default=60)
    cookie_domain: Mapped[str | None] = mapped_column(sa.String(253))
    """Registrable domain the router shares cookies with, e.g. ``shop.example`` for
    ``go.shop.example``. Null: the router sets no cookie."""
    cookie_name: Mapped[str] = mapped_column(sa.String(64), default="_cref")
    click_param: Mapped[str] = mapped_column(sa.String(64), default="cref")
    velocity_limit_per_minute: Mapped[int] = mapped_column(default=20)
    archived: Mapped[bool] = mapped_column(default=False)
    holding_days: Mapped[int] = mapped_column(default=30, server_default="30")
    """Days after the event before its commissions may be approved (refund window), 0-90."""
    auto_approve: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    """Approve commissions automatically (a job) once their holding period has passed."""
    payout_minimums: Mapped[dict[str, int]] = mapped_column(
        JSONType, default=dict, server_default="{}"
    )
    """Smallest payout per currency in minor units (``{"USD": 5000}``); smaller balances are
    carried to the next run. A currency not listed only needs a positive balance."""
    payout_schedule: Mapped[str] = mapped_column(
        sa.String(16), default="manual", server_default="manual"
    )
    """``manual``, ``weekly``, ``biweekly`` or ``monthly``."""
    payout_provider: Mapped[str] = mapped_column(
        sa.String(16), default="manual", server_default="manual"
    )
    """``manual`` (CSV mass-pay, then mark paid) or ``stripe`` (Connect transfers)."""
    next_payout_at: Mapped[datetime | None]
    """When the scheduled payout run is next due (null: manual, or not yet scheduled)."""
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
