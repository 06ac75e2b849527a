"""Run and check migrations programmatically (``openpartner migrate``, first start, tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from openpartner.db.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def drift(engine: Engine) -> list[object]:
    """Differences between the models and the migrated database; empty means no drift."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": not_partition(connection)}
        )
        return list(compare_metadata(context, Base.metadata))


def not_partition(connection: Connection) -> Callable[[str | None, str, object], bool]:
    """An ``include_name`` filter leaving out partitions (PostgreSQL): they are the storage of
    a partitioned table the models describe (``attributions``), not tables of their own."""
    found: set[str] = set()
    if connection.dialect.name == "postgresql":
        found.update(
            connection.execute(sa.text("SELECT relname FROM pg_class WHERE relispartition"))
            .scalars()
            .all()
        )

    def include(name: str | None, type_: str, parent_names: object) -> bool:
        return not (type_ == "table" and name in found)

    return include
