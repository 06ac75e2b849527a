"""the holding period lives on commission rule versions; ledger entries carry a memo

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 10:00:00

``commission_rule_versions.holding_days``: a commission matures at its event's time plus the
holding period of the rule version in force then, so every partner of an event matures at the
same instant, however late its commission is created. It was read from the program when each
commission was created, so changing ``programs.holding_days`` made partners of one event mature
days apart. Versions get their program's current holding period (the only one known), and the
commissions whose maturity can still matter (``pending``, ``held``, ``reversed`` — which may
reopen) are realigned to it; approved and paid ones keep the maturity they were approved under.

``ledger_entries.memo``: the reason a person gave for a movement (an early approval's).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("commission_rule_versions") as batch:
        batch.add_column(sa.Column("holding_days", sa.Integer(), nullable=True))
    op.execute(
        """UPDATE commission_rule_versions SET holding_days = (
            SELECT holding_days FROM programs
            WHERE programs.id = commission_rule_versions.program_id
        )"""
    )
    with op.batch_alter_table("commission_rule_versions") as batch:
        batch.alter_column("holding_days", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("memo", sa.Text(), nullable=True))

    if op.get_bind().dialect.name == "sqlite":
        # Times are stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': add whole days and
        # keep the fraction as it was.
        matures = (
            "strftime('%Y-%m-%d %H:%M:%S', due.occurred_at, '+' || due.holding_days || ' days')"
            " || substr(due.occurred_at, 20)"
        )
    else:
        # Hours, not days: a day added to a timestamptz follows the session's time zone (DST).
        matures = "due.occurred_at + make_interval(hours => 24 * due.holding_days)"
    op.execute(
        f"""UPDATE commissions SET matures_at = {matures}
        FROM (SELECT c.id AS id, e.occurred_at AS occurred_at, (
                SELECT v.holding_days FROM commission_rule_versions v
                WHERE v.program_id = e.program_id AND v.effective_from <= e.occurred_at
                ORDER BY v.effective_from DESC, v.seq DESC LIMIT 1
              ) AS holding_days
              FROM commissions c JOIN events e ON e.id = c.event_id
              WHERE c.status IN ('pending', 'held', 'reversed')) AS due
        WHERE commissions.id = due.id AND due.holding_days IS NOT NULL"""  # noqa: S608 (constants)
    )


def downgrade() -> None:
    # Maturities stay realigned: the per-commission values they replaced were the bug.
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("memo")
    with op.batch_alter_table("commission_rule_versions") as batch:
        batch.drop_column("holding_days")
