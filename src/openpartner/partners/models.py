from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.db.base import Base, IdType, JSONType, Timestamps


class Partner(Timestamps, Base):
    __tablename__ = "partners"
    __table_args__ = (sa.UniqueConstraint("program_id", "email"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(320))
    """Normalised (trimmed, lower-case); unique within a program."""
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
