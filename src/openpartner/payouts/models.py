"""Payout runs, payouts and their items, and partners' Stripe connected accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType, Timestamps


class PayoutRun(Base):
    __tablename__ = "payout_runs"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Payouts created and balances carried over (below the minimum, not payable, ...)."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Payout(Timestamps, Base):
    """Money owed to one partner in one currency, claimed by a run. For Stripe, the row in
    ``processing`` with its idempotency key is the committed intent made before any call."""

    __tablename__ = "payouts"
    __table_args__ = (sa.Index("ix_payouts_program_id_status", "program_id", "status"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[str] = mapped_column(IdType, index=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"), index=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    """Minor units: the sum of the payout's items (commissions and adjustments)."""
    provider: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    """``pending`` (manual, to be paid), ``processing`` (Stripe transfer intent committed),
    ``paid``, ``failed``."""
    idempotency_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    destination: Mapped[str | None] = mapped_column(sa.String(255))
    """The Stripe connected account (``acct_…``) for Stripe payouts."""
    transfer_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount_reversed: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    """Minor units Stripe reversed from the transfer, as last recorded."""
    reference: Mapped[str | None] = mapped_column(sa.String(255))
    """Manual payouts: the mass-pay provider's reference (PayPal/Wise batch or transaction)."""
    failure_code: Mapped[str | None] = mapped_column(sa.String(64))
    failure_message: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    actor: Mapped[str] = mapped_column(sa.String(64))
    paid_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]


class PayoutItem(Base):
    """What a payout was made of; kept when a failed payout releases its items."""

    __tablename__ = "payout_items"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    payout_id: Mapped[str] = mapped_column(IdType, index=True)
    commission_id: Mapped[str | None] = mapped_column(IdType)
    adjustment_id: Mapped[str | None] = mapped_column(IdType)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))


class ConnectAccount(Timestamps, Base):
    """A partner's Stripe connected account and its readiness, mirrored from
    ``account.updated``."""

    __tablename__ = "connect_accounts"

    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"), primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    stripe_account_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    transfers_active: Mapped[bool] = mapped_column(default=False)
    payouts_enabled: Mapped[bool] = mapped_column(default=False)
    details_submitted: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255))

    @property
    def ready(self) -> bool:
        return self.transfers_active
