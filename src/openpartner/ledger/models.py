"""Ledger entries: append-only legs of balanced transactions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType
from openpartner.db.sums import combine


class LedgerEntry(Base):
    """One leg of a ledger transaction. Debits are positive, credits negative; the legs of a
    transaction (``txn_id``) sum to zero in each currency. Never updated, never deleted."""

    __tablename__ = "ledger_entries"
    # No index by partner or program: balances are read from ``ledger_balances`` (migration
    # 0013 dropped the two that served the sums), so each entry costs fewer index insertions;
    # a replay writes millions.

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    txn_id: Mapped[str] = mapped_column(IdType, index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    """``accrual``, ``approval``, ``reversal``, ``adjustment``, ``payout_claim``, ``payout``,
    ``payout_failure``."""
    program_id: Mapped[str] = mapped_column(IdType)
    partner_id: Mapped[str] = mapped_column(IdType)
    account: Mapped[str] = mapped_column(sa.String(32))
    """See ``ledger/accounts.py``."""
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    commission_id: Mapped[str | None] = mapped_column(IdType, index=True)
    adjustment_id: Mapped[str | None] = mapped_column(IdType)
    payout_id: Mapped[str | None] = mapped_column(IdType, index=True)
    event_id: Mapped[str | None] = mapped_column(IdType)
    actor: Mapped[str] = mapped_column(sa.String(64))
    memo: Mapped[str | None] = mapped_column(sa.Text)
    """Why, when the movement is a person's decision rather than a rule's: e.g. the reason given
    for approving a commission before its holding period ended."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class LedgerBalance(Base):
    """A partner's running balance on one account in one currency: the sum of its ledger
    entries, kept in the same transaction as each of them (``ledger.service``), so balances
    and a program's liability are read from a few rows per partner whatever the ledger's
    length (1.57 M entries after two replays of 200,000 sales). ``openpartner ledger check``
    proves it equals the sum of the entries."""

    __tablename__ = "ledger_balances"
    __table_args__ = (sa.Index("ix_ledger_balances_program_id", "program_id"),)

    partner_id: Mapped[str] = mapped_column(IdType, primary_key=True)
    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    account: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    program_id: Mapped[str] = mapped_column(IdType)
    high: Mapped[int] = mapped_column(sa.BigInteger)
    low: Mapped[int] = mapped_column(sa.BigInteger)
    """The balance is ``high * 2^32 + low`` (signed minor units, as the entries): the sums of
    the entries' two 32-bit halves, as ``db.sums`` sums money, because a balance need not fit
    one BIGINT (each half fits for 2^31 entries)."""

    @property
    def amount(self) -> int:
        return combine(self.high, self.low)
