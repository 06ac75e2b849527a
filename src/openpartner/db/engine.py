"""Engine creation for SQLite (WAL, foreign keys, serialized writers) and PostgreSQL."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from openpartner.core.files import create_private, private_dir
from openpartner.settings import get_settings


def create_engine(url: str, **kwargs: Any) -> Engine:
    # A statement's parameters (emails, names, key hashes) never appear in an exception's
    # message, so never in a log line or a traceback.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            # Owner-only from the start: SQLite gives the -wal and -shm files the mode of the
            # database file.
            create_private(private_dir(Path(path).parent) / Path(path).name)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pool_pre_ping: it cost a round trip on every request. A connection that a database
    # restart broke fails its request with 503 database_unavailable (Retry-After), and SQLAlchemy
    # then invalidates the whole pool, so the following requests get fresh connections;
    # pool_recycle retires connections before a server or proxy idle timeout can cut them.
    kwargs.setdefault("pool_recycle", 1800)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, emit BEGIN, so SAVEPOINTs (test rollback) behave.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: every read-then-write of money is serialized
        # on SQLite, and a deferred transaction can never fail half-way on lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return create_engine(settings.effective_database_url, pool_size=settings.database_pool_size)
