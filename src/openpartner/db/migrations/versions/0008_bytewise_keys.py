"""ids and keys compare byte by byte on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 11:20:00

Every indexed string column (ids, keys, hashes, codes, statuses) gets the ``C`` collation on
PostgreSQL. A database created with a locale such as ``C.UTF-8`` or ``en_US.UTF-8`` otherwise
compares these columns with the C library's ``strcoll``: every B-tree insertion and every sort
on them pays for it (measured: most of the cost of writing attribution rows and clicks), and
PostgreSQL turns off its abbreviated sort keys for such collations. Ids are ASCII, so their
order is the same byte by byte; merchant-supplied values (customer ids, external ids) now sort
by their bytes, which nothing relies on. SQLite always compared bytes: nothing changes there.

The heap is not rewritten (same type, another collation); each index on these columns is
rebuilt and each table analysed again, which on a large ``clicks`` table takes minutes: run it
in a maintenance window.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "adjustments": ("commission_id", "currency", "id", "partner_id", "payout_id"),
    "api_keys": ("id", "partner_id", "program_id", "token_hash"),
    "attribution_configs": ("id", "program_id"),
    "attributions": ("event_id", "id", "partner_id", "program_id", "touch_id"),
    "clicks": ("id", "ip_hash", "link_id", "partner_id", "program_id", "visitor_hash"),
    "commission_audit": ("commission_id", "id"),
    "commission_rule_versions": ("id", "program_id"),
    "commissions": ("event_id", "id", "partner_id", "payout_id", "program_id", "status"),
    "connect_accounts": ("partner_id", "stripe_account_id"),
    "deals": ("external_id", "id", "program_id"),
    "events": ("customer_id", "deal_id", "external_id", "id", "program_id", "refund_of"),
    "identity_edges": ("click_id", "customer_id", "id", "program_id", "visitor_id"),
    "jobs": ("id", "status"),
    "ledger_entries": (
        "account",
        "commission_id",
        "currency",
        "partner_id",
        "payout_id",
        "program_id",
        "txn_id",
    ),
    "links": ("id", "key", "partner_id", "program_id"),
    "partners": ("email", "id", "program_id"),
    "payout_items": ("payout_id",),
    "payout_runs": ("id", "program_id"),
    "payouts": ("id", "idempotency_key", "partner_id", "program_id", "run_id", "status"),
    "programs": ("id",),
    "promotion_codes": ("code", "id", "partner_id", "program_id", "stripe_promotion_code_id"),
    "stripe_events": ("id",),
    "touchpoints": ("customer_id", "deal_id", "id", "program_id"),
}


def _collate(collation: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in KEY_COLUMNS.items():
        # Each column keeps its exact type (varchar(n) or text), read from the catalog.
        types: dict[str, str] = {
            name: type_
            for name, type_ in bind.execute(
                sa.text(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = CAST(:table AS regclass) AND attnum > 0"
                    " AND NOT attisdropped AND attname = ANY(:columns)"
                ),
                {"table": table, "columns": list(columns)},
            )
        }
        changes = ", ".join(
            f'ALTER COLUMN "{column}" TYPE {types[column]} COLLATE {collation}'
            for column in columns
        )
        # One statement per table: each of its indexes is rebuilt once.
        op.execute(f'ALTER TABLE "{table}" {changes}')
        # Changing a column's type drops its statistics: without them the planner guesses a
        # few thousand rows for any filter on these columns (a replay over 10 M clicks then
        # chose a nested loop of 9.5 M index probes). Gathered again here, not left to
        # autovacuum.
        op.execute(f'ANALYZE "{table}"')


def upgrade() -> None:
    _collate('"C"')


def downgrade() -> None:
    _collate('"default"')
