from __future__ import annotations

from datetime import datetime

from pydantic import Field

from openpartner.api.schemas import RequestModel, ResponseModel

LinkKey = Field(default=None, pattern=r"^[A-Za-z0-9_-]{3,64}$")


class LinkCreate(RequestModel):
    partner_id: str = Field(max_length=32)
    program_id: str | None = Field(default=None, max_length=32)
    """Optional: taken from the partner; when given it must match."""
    key: str | None = LinkKey
    destination_url: str | None = Field(default=None, max_length=2048)


class LinkUpdate(RequestModel):
    destination_url: str | None = Field(default=None, max_length=2048)
    archived: bool | None = None


class LinkOut(ResponseModel):
    id: str
    key: str
    program_id: str
    partner_id: str
    destination_url: str | None
    archived: bool
    created_at: datetime
    updated_at: datetime
