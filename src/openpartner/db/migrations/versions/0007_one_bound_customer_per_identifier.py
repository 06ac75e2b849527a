"""one bound customer per click id and per visitor id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 09:40:00

Two identify calls racing for the same click id (or visitor id) could both find it unbound and
both record a ``bound`` edge. A partial unique index now lets exactly one win; an edge a race
already doubled is demoted to ``conflict`` first (the earliest bind, by ``seq``, keeps it: first
bind wins, as resolution always read it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IDENTIFIERS = ("click_id", "visitor_id")


def _bound(identifier: str, table: str = "identity_edges") -> str:
    return (
        f"{table}.status = 'bound' AND {table}.customer_id IS NOT NULL "
        f"AND {table}.{identifier} IS NOT NULL"
    )


def upgrade() -> None:
    for identifier in IDENTIFIERS:
        op.execute(
            f"""
            UPDATE identity_edges SET status = 'conflict'
            WHERE {_bound(identifier)} AND seq > (
                SELECT min(first.seq) FROM identity_edges AS first
                WHERE first.program_id = identity_edges.program_id
                  AND first.{identifier} = identity_edges.{identifier}
                  AND {_bound(identifier, "first")}
            )
            """  # noqa: S608 (the identifiers are this file's constants)
        )
        where = sa.text(_bound(identifier).replace("identity_edges.", ""))
        op.create_index(
            f"uq_identity_edges_bound_{identifier}",
            "identity_edges",
            ["program_id", identifier],
            unique=True,
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade() -> None:
    for identifier in IDENTIFIERS:
        op.drop_index(f"uq_identity_edges_bound_{identifier}", table_name="identity_edges")
