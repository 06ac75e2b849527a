"""Posting balanced transactions, and every balance from the running balances.

Every posting adds its legs to ``ledger_balances`` in the same statement group, so a partner's
balance (and a program's liability) is a read of a few rows, not a sum over a ledger that every
replay lengthens. Each posting updates its keys in one order (partner, currency, account), and
holds those rows locked until commit on PostgreSQL: writers of one partner's money serialize on
them, as they do on the partner's commissions already."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from openpartner.core.ids import new_id, new_ids
from openpartner.db.bulk import copy_rows
from openpartner.db.sums import combine
from openpartner.ledger import accounts
from openpartner.ledger.models import LedgerBalance, LedgerEntry


@dataclass(frozen=True, slots=True)
class Refs:
    """What a ledger transaction is about (every leg carries the same references)."""

    program_id: str
    partner_id: str
    currency: str
    actor: str
    commission_id: str | None = None
    adjustment_id: str | None = None
    payout_id: str | None = None
    event_id: str | None = None
    memo: str | None = None


def post(session: Session, kind: str, refs: Refs, legs: Sequence[tuple[str, int]]) -> str:
    """Append one balanced transaction; returns its id. Zero legs are dropped."""
    if kind not in accounts.KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    legs = [(account, amount) for account, amount in legs if amount != 0]
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced ledger transaction: {legs}")
    if any(account not in accounts.ACCOUNTS for account, _ in legs):
        raise ValueError(f"unknown ledger account in {legs}")
    txn_id = new_id("led")
    add_to_balances(
        session,
        (
            {
                "partner_id": refs.partner_id,
                "currency": refs.currency,
                "account": account,
                "program_id": refs.program_id,
                "amount": amount,
            }
            for account, amount in legs
        ),
    )
    session.add_all(
        LedgerEntry(
            txn_id=txn_id,
            kind=kind,
            program_id=refs.program_id,
            partner_id=refs.partner_id,
            account=account,
            currency=refs.currency,
            amount=amount,
            commission_id=refs.commission_id,
            adjustment_id=refs.adjustment_id,
            payout_id=refs.payout_id,
            event_id=refs.event_id,
            actor=refs.actor,
            memo=refs.memo,
        )
        for account, amount in legs
    )
    return txn_id


def move(session: Session, kind: str, refs: Refs, amount: int, debit: str, credit: str) -> str:
    """``amount`` from ``credit`` to ``debit`` (a negative amount moves it back)."""
    return post(session, kind, refs, [(debit, amount), (credit, -amount)])


@dataclass(frozen=True, slots=True)
class Balance:
    """A partner's (or a program's) money in one currency, all from the ledger. Liabilities are
    shown as positive amounts owed."""

    currency: str
    pending: int
    approved: int
    processing: int
    paid: int
    earned: int

    @property
    def owed(self) -> int:
        return self.pending + self.approved + self.processing


def _sums(session: Session, *where: sa.ColumnElement[bool]) -> dict[str, dict[str, int]]:
    """Per currency and account, from the running balances: a few rows per partner, whatever
    the ledger's length (summed here, exactly: a total need not fit one BIGINT)."""
    rows = session.execute(
        sa.select(
            LedgerBalance.currency, LedgerBalance.account, LedgerBalance.high, LedgerBalance.low
        ).where(*where)
    )
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for currency, account, high, low in rows:
        out[currency][account] += combine(high, low)
    return out


def _balances(sums: dict[str, dict[str, int]]) -> list[Balance]:
    return [
        Balance(
            currency=currency,
            pending=-by.get(accounts.PENDING, 0),
            approved=-by.get(accounts.APPROVED, 0),
            processing=-by.get(accounts.PROCESSING, 0),
            paid=-by.get(accounts.CASH, 0),
            earned=by.get(accounts.EXPENSE, 0),
        )
        for currency, by in sorted(sums.items())
    ]


def partner_balances(session: Session, partner_id: str) -> list[Balance]:
    return _balances(_sums(session, LedgerBalance.partner_id == partner_id))


def program_balances(session: Session, program_id: str) -> list[Balance]:
    """The program's totals per currency; ``owed`` is its liability to partners."""
    return _balances(_sums(session, LedgerBalance.program_id == program_id))


_ENTRIES = cast(sa.Table, LedgerEntry.__table__)


def post_many(
    session: Session,
    actor: str,
    moves: Sequence[tuple[str, Mapping[str, Any], int, str, str]],
    now: datetime,
) -> None:
    """:func:`move` for many transactions, in one statement: each ``(kind, references,
    amount, debit, credit)`` is a transaction of two legs (``references``: ``Refs``' fields
    but the actor)."""
    rows: list[dict[str, Any]] = []
    for (kind, refs, amount, debit, credit), txn_id in zip(
        moves, new_ids("led", len(moves)), strict=True
    ):
        if kind not in accounts.KINDS or debit not in accounts.ACCOUNTS:
            raise ValueError(f"unknown ledger kind or account: {kind}, {debit}")
        if credit not in accounts.ACCOUNTS:
            raise ValueError(f"unknown ledger account {credit!r}")
        if amount == 0:
            continue
        for account, signed in ((debit, amount), (credit, -amount)):
            rows.append(
                {
                    "txn_id": txn_id,
                    "kind": kind,
                    "program_id": refs["program_id"],
                    "partner_id": refs["partner_id"],
                    "account": account,
                    "currency": refs["currency"],
                    "amount": signed,
                    "commission_id": refs.get("commission_id"),
                    "adjustment_id": refs.get("adjustment_id"),
                    "payout_id": refs.get("payout_id"),
                    "event_id": refs.get("event_id"),
                    "actor": actor,
                    "memo": refs.get("memo"),
                    "created_at": now,
                }
            )
    copy_rows(session, _ENTRIES, rows)
    add_to_balances(session, rows)


_BALANCES = cast(sa.Table, LedgerBalance.__table__)


def add_to_balances(session: Session, entries: Iterable[Mapping[str, Any]]) -> None:
    """Add ledger entries (column values) to the running balances: one upsert per call, keys
    in sorted order (the order every posting locks them in)."""
    totals: dict[tuple[str, str, str], list[Any]] = {}
    for e in entries:
        key = (e["partner_id"], e["currency"], e["account"])
        total = totals.setdefault(key, [e["program_id"], 0, 0])
        total[1] += e["amount"] >> _SHIFT
        total[2] += e["amount"] & _LOW
    rows = [
        {
            "partner_id": partner_id,
            "currency": currency,
            "account": account,
            "program_id": program_id,
            "high": high,
            "low": low,
        }
        for (partner_id, currency, account), (program_id, high, low) in sorted(totals.items())
        if high or low
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_BALANCES)
    stmt = insert.on_conflict_do_update(
        index_elements=["partner_id", "currency", "account"],
        set_={
            "high": _BALANCES.c.high + insert.excluded.high,
            "low": _BALANCES.c.low + insert.excluded.low,
        },
    )
    session.execute(stmt, rows)


_SHIFT, _LOW = 32, 0xFFFFFFFF  # as db.sums: a balance is kept as the sums of the two halves
