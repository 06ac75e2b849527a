from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from openpartner.api.schemas import Metadata, RequestModel, ResponseModel
from openpartner.attribution.models import MODEL_ALIASES, canonical_model
from openpartner.core.money import MAX_AMOUNT

CanonicalModelName = Literal[
    "last_click", "first_click", "linear", "partner_equal", "position", "time_decay", "role_based"
]
MIN_WINDOW_DAYS: Final = 1
MAX_WINDOW_DAYS: Final = 365
"""The attribution windows the API accepts (the engine itself takes 0 to 36,500 days)."""


def _model_name(value: Any, handler: ValidatorFunctionWrapHandler) -> str:
    try:
        return str(handler(canonical_model(value) if isinstance(value, str) else value))
    except ValidationError:
        raise PydanticCustomError(
            "invalid_model",
            "Unknown attribution model; expected one of {expected}, or an alias: {aliases}.",
            {
                "expected": ", ".join(get_args(CanonicalModelName)),
                "aliases": ", ".join(MODEL_ALIASES),
            },
        ) from None


def _window_days(value: Any, handler: ValidatorFunctionWrapHandler) -> int:
    try:
        return int(handler(value))
    except ValidationError:
        raise PydanticCustomError(
            "invalid_window",
            "The attribution window is a whole number of days from {minimum} to {maximum}.",
            {"minimum": MIN_WINDOW_DAYS, "maximum": MAX_WINDOW_DAYS},
        ) from None


AttributionModelName = Annotated[CanonicalModelName, WrapValidator(_model_name)]
"""A payout model's name, or one of its aliases (``attribution.models.MODEL_ALIASES``), taken
as the canonical name; anything else is refused as ``invalid_model``."""
WindowDays = Annotated[
    int, Field(ge=MIN_WINDOW_DAYS, le=MAX_WINDOW_DAYS), WrapValidator(_window_days)
]
"""An attribution window in days; out of range or not an integer is ``invalid_window``."""
ParamName = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
PayoutSchedule = Literal["manual", "weekly", "biweekly", "monthly"]
PayoutProvider = Literal["manual", "stripe"]
PayoutMinimums = Annotated[
    dict[
        Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")],
        Annotated[int, Field(ge=0, le=MAX_AMOUNT)],
    ],
    Field(max_length=50),
]
"""Smallest payout per currency, in minor units: ``{"USD": 5000}``."""


class ProgramCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    default_destination_url: str = Field(max_length=2048)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    """Defaults to the host of ``default_destination_url``."""
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)
    attribution_window_days: WindowDays = 60
    attribution_model: AttributionModelName = "last_click"
    attribution_params: dict[str, Any] = Field(default_factory=dict, max_length=16)
    """Model parameters, e.g. ``{"half_life_seconds": 604800}`` (see docs/attribution.md)."""
    cookie_lifetime_days: int = Field(default=60, ge=1, le=400)
    cookie_domain: str | None = Field(default=None, max_length=253)
    cookie_name: str | None = ParamName
    click_param: str | None = ParamName
    velocity_limit_per_minute: int = Field(default=20, ge=1, le=100_000)
    holding_days: int = Field(default=30, ge=0, le=90)
    auto_approve: bool = False
    payout_minimums: PayoutMinimums = Field(default_factory=dict)
    payout_schedule: PayoutSchedule = "manual"
    payout_provider: PayoutProvider = "manual"
    metadata: Metadata = Field(default_factory=dict)


class ProgramUpdate(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    default_destination_url: str | None = Field(default=None, max_length=2048)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    allowed_origins: list[str] | None = Field(default=None, max_length=50)
    attribution_window_days: WindowDays | None = None
    attribution_model: AttributionModelName | None = None
    attribution_params: dict[str, Any] | None = Field(default=None, max_length=16)
    cookie_lifetime_days: int | None = Field(default=None, ge=1, le=400)
    cookie_domain: str | None = Field(default=None, max_length=253)
    cookie_name: str | None = ParamName
    click_param: str | None = ParamName
    velocity_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    holding_days: int | None = Field(default=None, ge=0, le=90)
    auto_approve: bool | None = None
    payout_minimums: PayoutMinimums | None = None
    payout_schedule: PayoutSchedule | None = None
    payout_provider: PayoutProvider | None = None
    metadata: Metadata | None = None


class ProgramOut(ResponseModel):
    id: str
    name: str
    currency: str
    default_destination_url: str
    allowed_domains: list[str]
    allowed_origins: list[str]
    attribution_window_days: int
    attribution_model: str
    attribution_params: dict[str, Any]
    cookie_lifetime_days: int
    cookie_domain: str | None
    cookie_name: str
    click_param: str
    velocity_limit_per_minute: int
    holding_days: int
    auto_approve: bool
    payout_minimums: dict[str, int]
    payout_schedule: str
    payout_provider: str
    next_payout_at: datetime | None
    archived: bool
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    updated_at: datetime
