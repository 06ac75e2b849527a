from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.db.base import Base, IdType, Timestamps


class Link(Timestamps, Base):
    __tablename__ = "links"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"), index=True)
    destination_url: Mapped[str | None] = mapped_column(sa.String(2048))
    """Null: the program's default destination."""
    archived: Mapped[bool] = mapped_column(default=False)
