"""Manual payouts: a CSV for mass-pay tools (PayPal Payouts, Wise batch), then mark paid.

Columns: ``email, amount, currency, reference, note, name, partner_id, payout_id``. ``amount`` is
an exact decimal in the currency's major unit (``12.34``; ``1200`` for JPY); ``reference`` is the
payout id, unique per payment, to match the provider's report when marking payouts paid.
"""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.core.money import format_amount
from openpartner.partners.models import Partner
from openpartner.payouts.models import Payout

COLUMNS = ("email", "amount", "currency", "reference", "note", "name", "partner_id", "payout_id")


def manual_payouts_csv(
    session: Session, program_id: str, *, run_id: str | None = None, status: str = "pending"
) -> str:
    stmt = (
        sa.select(Payout, Partner)
        .join(Partner, Partner.id == Payout.partner_id)
        .where(
            Payout.program_id == program_id,
            Payout.provider == "manual",
            Payout.status == status,
        )
        .order_by(Payout.id)
    )
    if run_id is not None:
        stmt = stmt.where(Payout.run_id == run_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for payout, partner in session.execute(stmt):
        writer.writerow(
            [
                partner.email,
                format_amount(payout.amount, payout.currency),
                payout.currency,
                payout.id,
                f"Partner payout {payout.id}",
                _safe(partner.name),
                partner.id,
                payout.id,
            ]
        )
    return out.getvalue()


def _safe(value: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; neutralise them."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
