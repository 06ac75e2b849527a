"""Set-based SQL (ingest, attribution, replay): many rows in one statement whose text does not
depend on how many.

On PostgreSQL a multi-row ``VALUES`` list (what SQLAlchemy renders for ``executemany``) makes a
new, huge statement for every batch size: the driver re-parses it and the server re-plans it
every time, which cost more than the insert itself. So on PostgreSQL rows go in as one array per
column, ``INSERT ... SELECT ... FROM unnest(...)``, and lists are matched with ``= ANY(array)``:
the statement text is constant, so it is parsed once and runs as a prepared statement. A single
row (one event through ``POST /v1/events``) goes in as plain ``VALUES``, also constant. SQLite
(no arrays, and no such cost) gets the ordinary forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def one_of(column: Any, name: str, postgres: bool) -> sa.ColumnElement[bool]:
    """``column IN (:name...)``, bound to a list: ``= ANY(:name)`` on PostgreSQL."""
    if postgres:
        clause = column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String)))
    else:
        clause = column.in_(sa.bindparam(name, expanding=True))
    return cast(sa.ColumnElement[bool], clause)


def insert_rows(
    session: Session,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
    returning: tuple[str, ...] = (),
) -> list[sa.Row[Any]]:
    """Insert ``rows`` (all with the same keys) in their order, in one statement. With
    ``skip_conflicts_on``, a row that would violate that unique key is skipped
    (``ON CONFLICT DO NOTHING``); ``returning`` columns come back for the rows inserted."""
    if not rows:
        return []
    columns = tuple(rows[0])
    if is_postgresql(session):
        dialect = session.get_bind().dialect
        json_columns = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}

        def value(row: dict[str, Any], column: str) -> Any:
            return to_json(row[column]).decode() if column in json_columns else row[column]

        # A single event's rows: plain values. Arrays of one element cost more to build
        # (psycopg's array dumpers are Python) than the row they carry.
        one_row = len(rows) == 1
        sql = _insert_sql(dialect, table, columns, skip_conflicts_on, returning, one_row)
        if one_row:
            params = {f"c{i}": value(rows[0], c) for i, c in enumerate(columns)}
        else:
            params = {f"c{i}": [value(r, c) for r in rows] for i, c in enumerate(columns)}
        result: sa.Result[Any] = session.connection().exec_driver_sql(sql, params)
    else:
        insert = sqlite.insert(table)
        if skip_conflicts_on:
            insert = insert.on_conflict_do_nothing(index_elements=list(skip_conflicts_on))
        if returning:
            insert = insert.returning(*(table.c[c] for c in returning))  # type: ignore[assignment]
        result = session.execute(insert, list(rows))
    return list(result) if returning else []


@cache
def _insert_sql(
    dialect: sa.Dialect,
    table: sa.Table,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
    one_row: bool,
) -> str:
    """psycopg SQL inserting one row of plain values, or many rows from one array per column
    (``%(cN)b`` sends each as a binary array, which needs no escaping of the values; the text
    form costs about 2 ms per column of 1,000 strings). Both cast to the column types."""
    placeholder, suffix = ("s", "") if one_row else ("b", "[]")
    casts = ", ".join(
        f"CAST(%(c{i}){placeholder} AS {table.c[c].type.compile(dialect=dialect)}{suffix})"
        for i, c in enumerate(columns)
    )
    names = ", ".join(f'"{c}"' for c in columns)
    # Names and types come from the table's metadata, never from input.
    rows = f"VALUES ({casts})" if one_row else f"SELECT * FROM unnest({casts})"  # noqa: S608
    sql = f'INSERT INTO "{table.name}" ({names}) {rows}'
    if conflict:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql


def copy_rows(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) in bulk: ``COPY`` on PostgreSQL (values
    adapted in C, several times cheaper than arrays for hundreds of thousands of rows), one
    ``executemany`` on SQLite. No conflict handling, nothing returned."""
    if not rows:
        return
    if not is_postgresql(session):
        session.execute(sa.insert(table), list(rows))
        return
    columns = list(rows[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, sa.JSON)}
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(
                [to_json(row[c]).decode() if c in json_columns else row[c] for c in columns]
                if json_columns
                else [row[c] for c in columns]
            )


def update_rows(
    session: Session, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]
) -> None:
    """Update many rows (all with the same keys) by ``key``: on PostgreSQL the values go into
    a temporary table by ``COPY`` and one ``UPDATE ... FROM`` applies them; on SQLite, one
    ``executemany``."""
    if not rows:
        return
    columns = tuple(rows[0])
    if is_postgresql(session):
        # Names come from the table's metadata, never from input.
        staging = f"{table.name}_updates"
        names = ", ".join(f'"{c}"' for c in columns)
        session.execute(sa.text(f'DROP TABLE IF EXISTS "{staging}"'))
        session.execute(
            sa.text(
                f'CREATE TEMPORARY TABLE "{staging}" AS SELECT {names} FROM "{table.name}"'  # noqa: S608
                " WITH NO DATA"
            )
        )
        copy_rows(
            session,
            sa.Table(staging, sa.MetaData(), *(sa.Column(c, table.c[c].type) for c in columns)),
            rows,
        )
        sets = ", ".join(f'"{c}" = u."{c}"' for c in columns if c != key)
        session.execute(
            sa.text(
                f'UPDATE "{table.name}" t SET {sets} FROM "{staging}" u'  # noqa: S608
                f' WHERE t."{key}" = u."{key}"'
            )
        )
        session.execute(sa.text(f'DROP TABLE "{staging}"'))
        return
    stmt = (
        sa.update(table)
        .where(table.c[key] == sa.bindparam(f"v_{key}"))
        .values({c: sa.bindparam(f"v_{c}") for c in columns if c != key})
    )
    session.execute(stmt, [{f"v_{c}": v for c, v in r.items()} for r in rows])
