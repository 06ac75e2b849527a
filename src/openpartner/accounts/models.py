from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    """``secret`` (server-side) or ``publishable`` (browser, origin-checked)."""
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    """SHA-256 of the whole token. Tokens carry 192 random bits, so a fast hash is safe; the
    plaintext is shown once at creation and never stored."""
    display_prefix: Mapped[str] = mapped_column(sa.String(16))
    is_admin: Mapped[bool] = mapped_column(default=False)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    program_id: Mapped[str | None] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    """When set, the key sees only this program (publishable keys always have one)."""
    partner_id: Mapped[str | None] = mapped_column(sa.ForeignKey("partners.id"), index=True)
    """When set, the key acts as that partner and sees only the partner's own data."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
