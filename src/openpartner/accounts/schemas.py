from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from openpartner.api.schemas import RequestModel, ResponseModel


class ApiKeyCreate(RequestModel):
    kind: Literal["secret", "publishable"] = "secret"
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=32)
    admin: bool = False
    program_id: str | None = Field(default=None, max_length=32)
    partner_id: str | None = Field(default=None, max_length=32)


class ApiKeyOut(ResponseModel):
    id: str
    kind: str
    name: str
    display_prefix: str
    is_admin: bool
    scopes: list[str]
    program_id: str | None
    partner_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    token: str
    """The full key. Shown once; only its hash is stored."""
