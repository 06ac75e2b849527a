"""Alembic environment: one set of migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext

from openpartner.db.base import UTCDateTime
from openpartner.db.engine import create_engine
from openpartner.db.migrate import not_partition
from openpartner.db.models import Base
from openpartner.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().effective_database_url


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def render_item(kind: str, obj: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy so migrations never import app code."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, sa.JSON):
        autogen.imports.add("from sqlalchemy.dialects import postgresql")
        return "sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')"
    return False


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        compare_type=True,
        render_item=render_item,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        include_name=not_partition(connection),  # type: ignore[arg-type]
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
