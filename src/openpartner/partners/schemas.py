from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field

from openpartner.api.schemas import Metadata, RequestModel, ResponseModel

PartnerStatus = Literal["active", "revoked"]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class PartnerCreate(RequestModel):
    program_id: str = Field(max_length=32)
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    status: PartnerStatus = "active"
    metadata: Metadata = Field(default_factory=dict)


class PartnerUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    status: PartnerStatus | None = None
    metadata: Metadata | None = None


class PartnerOut(ResponseModel):
    id: str
    program_id: str
    name: str
    email: str
    status: str
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    updated_at: datetime
