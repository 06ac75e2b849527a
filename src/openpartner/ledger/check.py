"""Reconciliation: prove the books balance and agree with commissions, adjustments and payouts.

``openpartner ledger check`` runs :func:`check_books`; the tests run it after every scenario.
It checks that

1. every transaction sums to zero in each currency, with known accounts and kinds;
2. each commission's entries match its amount and state (expense, pending, approved);
3. each adjustment's entries match its amount;
4. each payout equals the sum of its items, its processing and cash entries match its state,
   and the commissions it claims are in the state the payout implies;
5. every partner's balance per account equals what commissions, adjustments and payouts say it
   should be;
6. every running balance (``ledger_balances``, what balances and liability are read from)
   equals the sum of its entries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.commissions.models import Adjustment, Commission
from openpartner.db.sums import combine, is_nonzero, money_sum
from openpartner.ledger import accounts
from openpartner.ledger.models import LedgerBalance, LedgerEntry
from openpartner.ledger.service import pending_balances
from openpartner.payouts.models import Payout, PayoutItem

Key = tuple[str, str, str]  # (partner, currency, account)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    transactions: int
    commissions: int
    adjustments: int
    payouts: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_books(session: Session) -> Report:
    problems: list[Problem] = []
    problems += _transactions(session)
    commissions = list(session.scalars(sa.select(Commission)))
    adjustments = list(session.scalars(sa.select(Adjustment)))
    payouts = list(session.scalars(sa.select(Payout)))
    problems += _commissions(session, commissions)
    problems += _adjustments(session, adjustments)
    problems += _payouts(session, payouts, commissions)
    problems += _balances(session, commissions, adjustments, payouts)
    problems += _running_balances(session)
    txns = session.scalar(sa.select(sa.func.count(sa.distinct(LedgerEntry.txn_id)))) or 0
    return Report(int(txns), len(commissions), len(adjustments), len(payouts), problems)


def _transactions(session: Session) -> list[Problem]:
    total = money_sum(LedgerEntry.amount)
    problems = [
        Problem("unbalanced_transaction", f"{txn} sums to {combine(high, low)} {currency}")
        for txn, currency, high, low in session.execute(
            sa.select(LedgerEntry.txn_id, LedgerEntry.currency, *total)
            .group_by(LedgerEntry.txn_id, LedgerEntry.currency)
            .having(is_nonzero(*total))
        )
    ]
    for account, kind in session.execute(
        sa.select(LedgerEntry.account, LedgerEntry.kind).distinct()
    ):
        if account not in accounts.ACCOUNTS or kind not in accounts.KINDS:
            problems.append(Problem("unknown_account", f"{kind} entry on {account}"))
    return problems


def _sums(session: Session, column: Any) -> dict[tuple[str, str], int]:
    """Entry totals per (``column`` value, account)."""
    rows = session.execute(
        sa.select(column, LedgerEntry.account, *money_sum(LedgerEntry.amount))
        .where(column.is_not(None))
        .group_by(column, LedgerEntry.account)
    )
    return {(ref, account): combine(high, low) for ref, account, high, low in rows}


def _commissions(session: Session, commissions: list[Commission]) -> list[Problem]:
    problems = []
    # Commission-level entries only: adjustments carry their own id and are checked apart.
    rows = session.execute(
        sa.select(LedgerEntry.commission_id, LedgerEntry.account, *money_sum(LedgerEntry.amount))
        .where(LedgerEntry.commission_id.is_not(None), LedgerEntry.adjustment_id.is_(None))
        .group_by(LedgerEntry.commission_id, LedgerEntry.account)
    )
    sums = {(ref, account): combine(high, low) for ref, account, high, low in rows}
    for c in commissions:
        live = 0 if c.status == "reversed" else c.amount
        expected = {
            accounts.EXPENSE: live,
            accounts.PENDING: -c.amount if c.status in ("pending", "held") else 0,
            accounts.APPROVED: -c.amount if c.status in ("approved", "paid") else 0,
        }
        for account, want in expected.items():
            got = sums.get((c.id, account), 0)
            if got != want:
                problems.append(
                    Problem(
                        "commission_mismatch",
                        f"{c.id} ({c.status}, {c.amount} {c.currency}): {account} is {got}, "
                        f"expected {want}",
                    )
                )
    return problems


def _adjustments(session: Session, adjustments: list[Adjustment]) -> list[Problem]:
    sums = _sums(session, LedgerEntry.adjustment_id)
    return [
        Problem("adjustment_mismatch", f"{a.id}: approved entries {got}, expected {-a.amount}")
        for a in adjustments
        if (got := sums.get((a.id, accounts.APPROVED), 0)) != -a.amount
    ]


def _payouts(
    session: Session, payouts: list[Payout], commissions: list[Commission]
) -> list[Problem]:
    problems = []
    items: dict[str, int] = defaultdict(int)
    for payout_id, amount in session.execute(sa.select(PayoutItem.payout_id, PayoutItem.amount)):
        items[payout_id] += amount
    sums = _sums(session, LedgerEntry.payout_id)
    by_id = {p.id: p for p in payouts}
    for p in payouts:
        if items[p.id] != p.amount:
            problems.append(Problem("payout_items", f"{p.id}: items {items[p.id]} != {p.amount}"))
        in_flight = p.status in ("pending", "processing")
        want_processing = -p.amount if in_flight else 0
        if sums.get((p.id, accounts.PROCESSING), 0) != want_processing:
            problems.append(Problem("payout_mismatch", f"{p.id}: processing entries"))
        sent = p.amount - p.amount_reversed if p.paid_at is not None else 0
        if sums.get((p.id, accounts.CASH), 0) != -sent:
            problems.append(Problem("payout_mismatch", f"{p.id}: cash entries"))
    for c in commissions:
        if c.payout_id is None:
            if c.status == "paid":
                problems.append(Problem("commission_state", f"{c.id} is paid without a payout"))
            continue
        payout = by_id.get(c.payout_id)
        want = "paid" if payout is not None and payout.status == "paid" else "approved"
        if payout is None or payout.status == "failed" or c.status != want:
            problems.append(
                Problem("commission_state", f"{c.id} ({c.status}) claimed by {c.payout_id}")
            )
    return problems


def _balances(
    session: Session,
    commissions: list[Commission],
    adjustments: list[Adjustment],
    payouts: list[Payout],
) -> list[Problem]:
    want: dict[Key, int] = defaultdict(int)
    for c in commissions:
        if c.status in ("pending", "held"):
            want[(c.partner_id, c.currency, accounts.PENDING)] -= c.amount
        elif c.status == "approved" and c.payout_id is None:
            want[(c.partner_id, c.currency, accounts.APPROVED)] -= c.amount
    for a in adjustments:
        if a.payout_id is None:
            want[(a.partner_id, a.currency, accounts.APPROVED)] -= a.amount
    for p in payouts:
        if p.status in ("pending", "processing"):
            want[(p.partner_id, p.currency, accounts.PROCESSING)] -= p.amount
        if p.paid_at is not None:
            want[(p.partner_id, p.currency, accounts.CASH)] -= p.amount - p.amount_reversed
    got: dict[Key, int] = {
        (partner, currency, account): combine(high, low)
        for partner, currency, account, high, low in session.execute(
            sa.select(
                LedgerEntry.partner_id,
                LedgerEntry.currency,
                LedgerEntry.account,
                *money_sum(LedgerEntry.amount),
            )
            .where(LedgerEntry.account != accounts.EXPENSE)
            .group_by(LedgerEntry.partner_id, LedgerEntry.currency, LedgerEntry.account)
        )
    }
    return [
        Problem("balance_mismatch", f"{key}: ledger {got.get(key, 0)}, expected {want.get(key, 0)}")
        for key in sorted(set(want) | set(got))
        if got.get(key, 0) != want.get(key, 0)
    ]


def _running_balances(session: Session) -> list[Problem]:
    """``ledger_balances`` against the sums of the entries, per (partner, currency, account)."""
    sums: dict[Key, int] = {
        (partner, currency, account): combine(high, low)
        for partner, currency, account, high, low in session.execute(
            sa.select(
                LedgerEntry.partner_id,
                LedgerEntry.currency,
                LedgerEntry.account,
                *money_sum(LedgerEntry.amount),
            ).group_by(LedgerEntry.partner_id, LedgerEntry.currency, LedgerEntry.account)
        )
    }
    kept: dict[Key, int] = defaultdict(int)
    for b in session.scalars(sa.select(LedgerBalance).execution_options(populate_existing=True)):
        kept[(b.partner_id, b.currency, b.account)] += b.amount
    for key, (_, high, low) in pending_balances(session).items():  # this transaction's own
        kept[key] += combine(high, low)
    return [
        Problem(
            "running_balance_mismatch",
            f"{key}: running balance {kept.get(key, 0)}, entries sum to {sums.get(key, 0)}",
        )
        for key in sorted(set(sums) | set(kept))
        if sums.get(key, 0) != kept.get(key, 0)
    ]
