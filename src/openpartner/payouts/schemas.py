from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from openpartner.api.schemas import FreeText, RequestModel, ResponseModel

PayoutStatus = Literal["pending", "processing", "paid", "failed"]


class RunIn(RequestModel):
    program_id: str | None = Field(default=None, max_length=32)
    """Required unless the key is bound to a program."""


class RunOut(ResponseModel):
    id: str
    program_id: str
    provider: str
    actor: str
    summary: dict[str, Any]
    """``payouts``: what was created; ``carried``: balances left for the next run and why
    (``below_minimum``, ``not_connected``)."""
    created_at: datetime


class PayoutOut(ResponseModel):
    id: str
    run_id: str
    program_id: str
    partner_id: str
    amount: int
    currency: str
    provider: str
    status: str
    destination: str | None
    transfer_id: str | None
    amount_reversed: int
    reference: str | None
    failure_code: str | None
    failure_message: str | None
    paid_at: datetime | None
    failed_at: datetime | None
    created_at: datetime


class PayoutItemOut(ResponseModel):
    commission_id: str | None
    adjustment_id: str | None
    amount: int
    currency: str


class PayoutDetail(PayoutOut):
    items: list[PayoutItemOut]


class MarkPaidIn(RequestModel):
    reference: str | None = Field(default=None, min_length=1, max_length=255)


class BulkMarkPaidIn(RequestModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    reference: str | None = Field(default=None, min_length=1, max_length=255)


class CancelIn(RequestModel):
    reason: FreeText = Field(min_length=1, max_length=1000)


class ConnectIn(RequestModel):
    return_url: str = Field(pattern=r"^https?://", max_length=2048)
    """Where Stripe sends the partner after onboarding."""
    refresh_url: str = Field(pattern=r"^https?://", max_length=2048)
    """Where Stripe sends the partner when the link has expired (ask for a new one there)."""


class ConnectOut(ResponseModel):
    partner_id: str
    stripe_account_id: str
    ready: bool
    onboarding_url: str


class BalanceOut(ResponseModel):
    currency: str
    pending: int
    """Accrued, not yet approved (includes held)."""
    approved: int
    """Approved and unclaimed, net of adjustments: what the next run would pay."""
    processing: int
    """In payouts not yet paid."""
    paid: int
    earned: int
    """Everything accrued, net of reversals and adjustments."""


class BalancesOut(ResponseModel):
    owner_id: str
    balances: list[BalanceOut]
