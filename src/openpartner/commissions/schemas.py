from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field

from openpartner.api.schemas import FreeText, RequestModel, ResponseModel, Timestamp
from openpartner.events.schemas import EVENT_TYPE_PATTERN

CommissionStatus = Literal["pending", "approved", "paid", "reversed", "held"]


class RuleIn(RequestModel):
    event_type: str = Field(pattern=EVENT_TYPE_PATTERN)
    kind: Literal["percent", "flat"]
    rate_bps: int | None = Field(default=None, ge=0, le=10_000)
    """Percent rules: basis points of the partner's attributed amount (1000 = 10 %)."""
    amount: int | str | None = None
    """Flat rules: minor units (``500``) or an exact decimal string (``"5.00"``)."""
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    """Flat rules: the reward's currency (default: the program's)."""
    recurrence: Literal["first", "recurring"] = "recurring"
    max_months: int | None = Field(default=None, ge=1, le=1200)
    """Recurring rules: months after the customer's first event of the type (none: forever)."""
    partner_id: str | None = Field(default=None, max_length=32)
    """An override for this partner only."""


class RuleSetIn(RequestModel):
    effective_from: Timestamp | None = None
    """When this version takes effect (default: now); events are computed with the version in
    force at their own time."""
    rules: list[RuleIn] = Field(max_length=500)
    holding_days: int | None = Field(default=None, ge=0, le=90)
    """Days after an event before its commissions mature (default: the program's
    ``holding_days``). Recorded on the version: events in force under it keep it for good."""


class RuleSetOut(ResponseModel):
    id: str
    program_id: str
    effective_from: datetime
    rules: list[dict[str, Any]]
    holding_days: int
    created_by: str
    created_at: datetime


class CommissionOut(ResponseModel):
    id: str
    program_id: str
    partner_id: str
    event_id: str
    event_type: str
    amount: int
    currency: str
    base_amount: int
    rule_version_id: str | None
    rule: dict[str, Any]
    status: str
    matures_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    reversed_at: datetime | None
    reason: str | None
    payout_id: str | None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> bool:
        """False once ``reversed``: the commission owes nothing, and ``amount`` keeps what it
        was when it was reversed (the ledger's reversal entry took it back)."""
        return self.status != "reversed"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def effective_amount(self) -> int:
        """What the commission counts for now, in minor units of ``currency``: ``amount``, or 0
        once reversed. Adjustments booked after payment are listed apart."""
        return self.amount if self.counts else 0


class AuditOut(ResponseModel):
    id: str
    action: str
    from_status: str | None
    to_status: str
    amount_delta: int
    actor: str
    reason: str | None
    at: datetime


class AdjustmentOut(ResponseModel):
    id: str
    partner_id: str
    amount: int
    currency: str
    reason: str
    commission_id: str | None
    event_id: str | None
    payout_id: str | None
    created_at: datetime


class LedgerEntryOut(ResponseModel):
    """One leg of a ledger transaction about the commission (debits positive)."""

    txn_id: str
    kind: str
    account: str
    amount: int
    currency: str
    actor: str
    memo: str | None
    created_at: datetime


class CommissionDetail(CommissionOut):
    audit: list[AuditOut]
    adjustments: list[AdjustmentOut]
    ledger: list[LedgerEntryOut]
    """Its ledger history, oldest first: accrual, approval (with the reason of an early one as
    ``memo``), reversal, payout …"""


class ReasonIn(RequestModel):
    reason: FreeText = Field(min_length=1, max_length=1000)


class ApproveIn(RequestModel):
    early: bool = False
    """Approve even before the holding period ends (``reason`` required then)."""
    reason: FreeText | None = Field(default=None, min_length=1, max_length=1000)
    """Why: kept in the audit trail and on the approval's ledger entries."""


class BulkIn(RequestModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    reason: FreeText | None = Field(default=None, min_length=1, max_length=1000)


class BulkApproveIn(BulkIn):
    early: bool = False
    """Approve even before the holding period ends (``reason`` required then)."""


class BulkItem(ResponseModel):
    id: str
    result: Literal["changed", "unchanged", "refused"]
    status: str | None = None
    code: str | None = None
    detail: str | None = None


class BulkOut(ResponseModel):
    changed: int
    unchanged: int
    refused: int
    results: list[BulkItem]
