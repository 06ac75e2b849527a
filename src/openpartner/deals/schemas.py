from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field

from openpartner.api.schemas import Metadata, RequestModel, ResponseModel, Timestamp
from openpartner.programs.schemas import AttributionModelName

TouchpointType = Literal["referral", "intro", "demo", "support", "closer", "other"]


class TouchpointIn(RequestModel):
    partner_id: str = Field(max_length=32)
    type: TouchpointType
    deal_id: str | None = Field(default=None, max_length=32)
    customer_id: str | None = Field(default=None, max_length=255)
    occurred_at: Timestamp | None = None
    metadata: Metadata = Field(default_factory=dict)


class TouchpointOut(ResponseModel):
    id: str
    program_id: str
    partner_id: str
    deal_id: str | None
    customer_id: str | None
    type: str
    occurred_at: datetime
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))


class DealIn(RequestModel):
    """Open a deal (no amount) or open-and-close it in one call (amount and closed_at)."""

    program_id: str | None = Field(default=None, max_length=32)
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    amount: int | str | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    closed_at: Timestamp | None = None
    model: AttributionModelName | None = None
    metadata: Metadata = Field(default_factory=dict)


class DealClose(RequestModel):
    amount: int | str
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    closed_at: Timestamp | None = None
    model: AttributionModelName | None = None


class DealOut(ResponseModel):
    id: str
    program_id: str
    external_id: str | None
    customer_id: str | None
    status: str
    amount: int | None
    currency: str | None
    model: str | None
    closed_at: datetime | None
    event_id: str | None
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    touchpoints: list[TouchpointOut] = Field(default_factory=list)
