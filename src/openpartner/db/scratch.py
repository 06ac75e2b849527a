"""Throwaway PostgreSQL databases, for the test suite and the benchmarks: a fresh database with a
unique name on a server the caller may create databases on, dropped ``WITH (FORCE)`` when done
(so a connection left open by a killed process cannot keep it alive)."""

from __future__ import annotations

import os
import secrets

import sqlalchemy as sa


def create_database(admin_url: str, prefix: str) -> tuple[str, str]:
    """A new, empty database named ``<prefix>_<pid>_<random>``: its URL and its name."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    _run(admin_url, f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_database(admin_url: str, name: str) -> None:
    _run(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(admin_url: str, statement: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        admin.dispose()
