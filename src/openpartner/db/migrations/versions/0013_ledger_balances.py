"""running balances per partner, currency and account

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 02:00:00

``ledger_balances``: the sum of each partner's ledger entries per currency and account, kept in
the same transaction as every entry, so balances and liability no longer sum the whole ledger
(which every replay lengthens). Filled here from the entries already stored. The two indexes of
``ledger_entries`` that served those sums (by partner, by program) go: nothing else reads by
them, and a replay writes millions of entries, each one insertion per index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_balances",
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "partner_id", "currency", "account", name=op.f("pk_ledger_balances")
        ),
    )
    op.create_index("ix_ledger_balances_program_id", "ledger_balances", ["program_id"])
    op.execute(
        """INSERT INTO ledger_balances (partner_id, currency, account, program_id, high, low)
        SELECT partner_id, currency, account, min(program_id),
               sum(amount >> 32), sum(amount & 4294967295)
        FROM ledger_entries GROUP BY partner_id, currency, account"""
    )
    op.drop_index("ix_ledger_entries_partner_id_currency_account", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_program_id_account", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index(
        "ix_ledger_entries_program_id_account", "ledger_entries", ["program_id", "account"]
    )
    op.create_index(
        "ix_ledger_entries_partner_id_currency_account",
        "ledger_entries",
        ["partner_id", "currency", "account"],
    )
    op.drop_index("ix_ledger_balances_program_id", table_name="ledger_balances")
    op.drop_table("ledger_balances")
