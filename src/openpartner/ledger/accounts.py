"""The ledger's accounts. Every entry is for one partner in one currency; debits are positive,
credits negative. Liabilities to partners carry credit (negative) balances.

==================== ======= ==========================================================
account              normal  holds
==================== ======= ==========================================================
commission_expense   debit   what the merchant has committed to pay, net of reversals
partner_pending      credit  accrued commissions not yet approved (``pending``, ``held``)
partner_approved     credit  approved, unclaimed commissions plus unclaimed adjustments
partner_processing   credit  claimed by a payout that is not paid yet
payouts_cash         credit  money that left the platform to the partner (paid payouts)
==================== ======= ==========================================================
"""

from __future__ import annotations

EXPENSE = "commission_expense"
PENDING = "partner_pending"
APPROVED = "partner_approved"
PROCESSING = "partner_processing"
CASH = "payouts_cash"

ACCOUNTS = (EXPENSE, PENDING, APPROVED, PROCESSING, CASH)
LIABILITIES = (PENDING, APPROVED, PROCESSING)

KINDS = (
    "accrual",
    "approval",
    "reversal",
    "adjustment",
    "payout_claim",
    "payout",
    "payout_failure",
)


def liability_for(status: str) -> str:
    """The account a commission's amount sits in while it is in ``status`` (unpaid)."""
    return APPROVED if status == "approved" else PENDING
