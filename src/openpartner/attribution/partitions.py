"""PostgreSQL: a program's attribution rows rebuilt as a partition of their own, then swapped in.

``attributions`` is partitioned by ``program_id`` (migration 0009). Every program's rows start
in the default partition. Rewriting most of a large program row by row is slow: each deleted row
is a heap update plus WAL, each inserted row a heap insert plus one insertion into each of four
B-trees (about 10 µs a row here). :func:`rebuild` instead writes the program's rows, the kept
ones and the new ones, into a fresh table with no index, and attaches it as the program's
partition: PostgreSQL builds the indexes once, by sorting, and the old partition is dropped
whole. From then on the program has a partition of its own.

While a rebuild writes, attribution writes of every program wait (the parent is locked against
writes, so that no row lands in the partition being replaced and no writer can deadlock with
the swap); reads go on, except for the moment of the swap itself.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from openpartner.db.bulk import is_postgresql

PARENT = "attributions"
MAINTENANCE_WORK_MEM = "1GB"
_PROGRAM_ID = re.compile(r"[A-Za-z0-9_]{1,40}")


def is_partitioned(session: Session) -> bool:
    """Whether ``attributions`` is partitioned here (PostgreSQL after migration 0009)."""
    if not is_postgresql(session):
        return False
    return bool(
        session.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table"
                " WHERE partrelid = to_regclass(:parent))"
            ),
            {"parent": PARENT},
        ).scalar_one()
    )


def partition_of(session: Session, program_id: str) -> str | None:
    """The name of the partition holding exactly ``program_id``'s rows, if it has one."""
    return session.execute(
        sa.text(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(:parent)
              AND pg_get_expr(c.relpartbound, c.oid) = :bound"""
        ),
        {"parent": PARENT, "bound": f"FOR VALUES IN ({_literal(program_id)})"},
    ).scalar_one_or_none()


def partitions(session: Session) -> list[str]:
    """Every partition of ``attributions`` (the default one included)."""
    return list(
        session.execute(
            sa.text(
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = to_regclass(:parent) ORDER BY c.relname"""
            ),
            {"parent": PARENT},
        ).scalars()
    )


def new_table(program_id: str) -> tuple[str, str]:
    """A fresh name for a table of ``program_id``'s rows, and the statement creating it: shaped
    like ``attributions`` (``seq`` still defaults to the shared sequence), no index, and a CHECK
    on the program, which lets ATTACH skip scanning it for rows of other programs."""
    table = f"{PARENT}_{program_id.lower()}_{secrets.token_hex(3)}"
    return table, (
        f'CREATE TABLE "{table}" (LIKE {PARENT} INCLUDING DEFAULTS,'
        f' CONSTRAINT "{table}_program" CHECK (program_id = {_literal(program_id)}))'
    )


def index_statements(connection: Connection, table: str) -> tuple[list[str], str]:
    """The statements building on ``table`` each index of ``attributions`` (each may run in a
    connection of its own, at the same time: CREATE INDEX takes a SHARE lock), then the one
    making its unique indexes the constraints the parent has, so that ATTACH finds them all and
    builds nothing."""
    creates, constraints = [], []
    for n, (definition, kind) in enumerate(
        connection.execute(
            sa.text(
                """SELECT pg_get_indexdef(i.indexrelid), c.contype FROM pg_index i
                LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                WHERE i.indrelid = to_regclass(:parent) ORDER BY i.indexrelid"""
            ),
            {"parent": PARENT},
        )
    ):
        name = f"{table}_{n}"
        unique = "UNIQUE " if definition.startswith("CREATE UNIQUE ") else ""
        method_and_columns = definition.split(" USING ", 1)[1]  # "btree (program_id, seq)"
        creates.append(f'CREATE {unique}INDEX "{name}" ON "{table}" USING {method_and_columns}')
        if kind in ("p", "u"):
            constraint = "PRIMARY KEY" if kind == "p" else "UNIQUE"
            constraints.append(f'ADD {constraint} USING INDEX "{name}"')
    return creates, f'ALTER TABLE "{table}" ' + ", ".join(constraints)


def rebuild(
    session: Session,
    program_id: str,
    fill: Callable[[str], None],
    timer: Callable[[str, float], None] | None = None,
    table: str | None = None,
) -> str:
    """Replace every attribution row of ``program_id`` with what ``fill(table)`` writes into
    ``table``, a table from :func:`new_table`: made here, or given (already holding rows).
    ``fill`` may read the program's current rows from ``attributions``. Runs in the caller's
    transaction; returns the name of the program's new partition. ``timer(step, seconds)``
    hears how long each of its own steps took."""
    literal = _literal(program_id)

    def timed(step: str, sql: str, params: dict[str, str] | None = None) -> None:
        started = time.perf_counter()
        session.execute(sa.text(sql), params or {})
        if timer is not None:
            timer(step, time.perf_counter() - started)

    timed("lock attributions", f"LOCK TABLE {PARENT} IN SHARE ROW EXCLUSIVE MODE")
    # Sorts for the index builds, in memory (this transaction only).
    session.execute(sa.text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'"))
    if table is None:
        table, create = new_table(program_id)
        session.execute(sa.text(create))
    fill(table)
    old = partition_of(session, program_id)
    if old is None:  # the rows are in the default partition, among other programs'
        timed(
            "delete from default partition",
            f"DELETE FROM {PARENT} WHERE program_id = :program",
            {"program": program_id},
        )
    else:
        timed("drop old partition", f'ALTER TABLE {PARENT} DETACH PARTITION "{old}"')
        session.execute(sa.text(f'DROP TABLE "{old}"'))
    # Attaching builds each of the parent's indexes on the new table, by sorting it.
    timed(
        "attach partition (builds the indexes it lacks)",
        f'ALTER TABLE {PARENT} ATTACH PARTITION "{table}" FOR VALUES IN ({literal})',
    )
    timed("analyze partition", f'ANALYZE "{table}"')
    return table


def _literal(program_id: str) -> str:
    """``program_id`` as an SQL literal for DDL (which takes no parameters): program ids are
    ours (``prg_`` and base-32), anything else is refused rather than quoted."""
    if not _PROGRAM_ID.fullmatch(program_id):
        raise ValueError(f"not a program id: {program_id!r}")
    return f"'{program_id}'"
