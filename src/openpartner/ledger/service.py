"""Posting balanced transactions, and every balance from the running balances.

Every posting adds its legs to ``ledger_balances`` in the same transaction, so a partner's
balance (and a program's liability) is a read of a few rows, not a sum over a ledger that every
replay lengthens. A transaction's balance changes are written together just before it commits,
all keys in one order (partner, currency, account), so two transactions never lock balance rows
in opposite orders, and the rows stay locked only from there to the commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

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


def _sums(
    session: Session, *, partner_id: str | None = None, program_id: str | None = None
) -> dict[str, dict[str, int]]:
    """Per currency and account, from the running balances: a few rows per partner, whatever
    the ledger's length (summed here, exactly: a total need not fit one BIGINT), plus this
    transaction's own postings not yet written."""
    where = (
        LedgerBalance.partner_id == partner_id
        if partner_id is not None
        else LedgerBalance.program_id == program_id
    )
    rows = session.execute(
        sa.select(
            LedgerBalance.currency, LedgerBalance.account, LedgerBalance.high, LedgerBalance.low
        ).where(where)
    )
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for currency, account, high, low in rows:
        out[currency][account] += combine(high, low)
    for (partner, currency, account), (program, high, low) in pending_balances(session).items():
        if partner == partner_id or (partner_id is None and program == program_id):
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
    return _balances(_sums(session, partner_id=partner_id))


def program_balances(session: Session, program_id: str) -> list[Balance]:
    """The program's totals per currency; ``owed`` is its liability to partners."""
    return _balances(_sums(session, program_id=program_id))


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
    """Queue ledger entries (column values) for the running balances. They reach the table
    in :func:`apply_balances`, just before the transaction commits, all keys in one sorted
    order: a transaction that posts for partners A then B and another for B then A would
    otherwise lock A's and B's rows in opposite orders and deadlock."""
    pending: list[dict[tuple[str, str, str], list[Any]]] = session.info.setdefault(_PENDING, [])
    totals: dict[tuple[str, str, str], list[Any]] = {}
    for e in entries:
        key = (e["partner_id"], e["currency"], e["account"])
        total = totals.setdefault(key, [e["program_id"], 0, 0])
        total[1] += e["amount"] >> _SHIFT
        total[2] += e["amount"] & _LOW
    if totals:
        pending.append(totals)


def pending_balances(session: Session) -> dict[tuple[str, str, str], list[Any]]:
    """This transaction's queued changes per (partner, currency, account): [program, high, low]."""
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for totals in session.info.get(_PENDING, ()):
        for key, (program_id, high, low) in totals.items():
            total = merged.setdefault(key, [program_id, 0, 0])
            total[1] += high
            total[2] += low
    return merged


def apply_balances(session: Session) -> None:
    """Write the queued balance changes: one upsert, keys in sorted order. Only when the whole
    transaction commits: inside a savepoint, the write could be rolled back with changes queued
    before it; readers add the queue to what they read instead (:func:`pending_balances`)."""
    merged = pending_balances(session)
    session.info.pop(_PENDING, None)
    rows = [
        {
            "partner_id": partner_id,
            "currency": currency,
            "account": account,
            "program_id": program_id,
            "high": high,
            "low": low,
        }
        for (partner_id, currency, account), (program_id, high, low) in sorted(merged.items())
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


_PENDING = "openpartner.ledger.pending_balances"
_MARKS = "openpartner.ledger.savepoint_marks"


@event.listens_for(Session, "before_commit")
def _apply_before_commit(session: Session) -> None:
    apply_balances(session)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    # Changes queued inside a savepoint that rolls back must go with it.
    if transaction.nested:
        marks = session.info.setdefault(_MARKS, {})
        marks[id(transaction)] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    mark = session.info.get(_MARKS, {}).pop(id(previous), None)
    if previous.nested and mark is not None:
        del session.info.get(_PENDING, [])[mark:]


@event.listens_for(Session, "after_transaction_end")
def _forget_ended(session: Session, transaction: SessionTransaction) -> None:
    # Committed: already written; rolled back or closed: never to be written.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_MARKS, None)


_SHIFT, _LOW = 32, 0xFFFFFFFF  # as db.sums: a balance is kept as the sums of the two halves
