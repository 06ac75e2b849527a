"""Two PostgreSQL backends for the statements of a large replay that run on one core.

PostgreSQL 15 runs window functions and ``INSERT ... SELECT`` in the backend alone, never in
parallel workers, and those are most of a large replay: deriving the rows of 4.2 M touches
(about 19 s here) and writing them (about 14 s). Events are independent of one another, so two
connections of their own each take half of the events (``event_seq`` even or odd), at the same
time, on a machine with at least two cores.

What the helpers make must be visible to the replay's transaction and to each other, so they
work in committed transactions of their own, on ``UNLOGGED`` scratch tables (no WAL): the
eligible touches, then each half's rows. The replay's transaction reads the halves through a
temporary view, ``replay_rows``, and drops the scratch tables when it is done (so they go with
its commit). A rebuild of the program's partition (``partitions.rebuild``) gets its new table
from the helpers too, each inserting its half of the rows; the replay's transaction then adds the
kept rows and swaps it in. The helpers read what is committed, which is what a replay in a
transaction of its own sees anyway. A replay that fails leaves its scratch tables behind: the
next large replay of the same program removes them (:meth:`TwoBackends.sweep`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from openpartner.attribution import partitions

PARALLEL_MIN_EVENTS: Final = 100_000
"""Below this many events in scope a replay takes a few seconds in one backend: not worth two
more connections."""
HALVES: Final = (0, 1)


class TwoBackends:
    """The scratch tables of one replay, and the two helper connections that fill them."""

    def __init__(self, engine: Engine, program_id: str, work_mem: str) -> None:
        self.engine = engine
        self.work_mem = work_mem
        key = f"{program_id.lower()}_{secrets.token_hex(3)}"
        self.touches = f"replay_scratch_{key}_touches"
        self.halves = [f"replay_scratch_{key}_rows_{h}" for h in HALVES]
        self.program_id = program_id

    @classmethod
    def for_replay(
        cls, session: Session, program_id: str, events: int, work_mem: str
    ) -> TwoBackends | None:
        """Helpers for a replay of ``events`` events, when they are worth it (PostgreSQL with
        ``attributions`` partitioned, at least ``PARALLEL_MIN_EVENTS`` events)."""
        if events < PARALLEL_MIN_EVENTS or not partitions.is_partitioned(session):
            return None
        bind = session.get_bind()
        url = (bind.engine if isinstance(bind, Connection) else bind).url
        # Connections of their own, opened for the replay and closed after it: never taken
        # from the application's pool, whose size matches its threads (``api/app.py``).
        return cls(
            sa.create_engine(url, poolclass=NullPool, hide_parameters=True), program_id, work_mem
        )

    def sweep(self, session: Session) -> None:
        """Drop what an earlier replay of this program that failed left behind: its scratch
        tables, and a new partition it did not get to attach."""
        program = self.program_id.lower().replace("_", r"\_")
        stale = session.execute(
            sa.text(
                """SELECT relname FROM pg_class
                WHERE relkind = 'r' AND NOT relispartition
                  AND relnamespace = current_schema()::regnamespace
                  AND (relname LIKE :scratch OR relname LIKE :staging)"""
            ),
            {
                "scratch": rf"replay\_scratch\_{program}\_%",
                "staging": rf"attributions\_{program}\_%",
            },
        ).scalars()
        for name in list(stale):
            session.execute(sa.text(f'DROP TABLE "{name}"'))

    def derive_rows(
        self, touches_select: str, rows_select: Callable[[str], str], params: dict[str, Any]
    ) -> None:
        """The eligible touches (one statement; PostgreSQL runs it in parallel workers), then
        each half's rows, in the two helpers at once."""
        self._committed(
            [
                f"CREATE UNLOGGED TABLE {self.touches} AS {touches_select}",
                f"ANALYZE {self.touches}",
            ],
            params,
        )

        def half(h: int) -> None:
            source = f"(SELECT * FROM {self.touches} WHERE event_seq % 2 = {h})"
            self._committed(
                [
                    f"CREATE UNLOGGED TABLE {self.halves[h]} AS {rows_select(source)}",
                    f"ANALYZE {self.halves[h]}",
                ],
                params,
            )

        self._both(half)

    def rows_view(self, session: Session) -> str:
        """The statement making ``replay_rows`` (a temporary view of the two halves) in the
        replay's session: the second half's ``ord`` goes on after the first's, so that ``ord``
        is unique over the view as over a one-backend ``replay_rows``."""
        first = int(
            session.execute(
                sa.text(f"SELECT coalesce(max(ord), 0) FROM {self.halves[0]}")
            ).scalar_one()
        )
        columns = (
            "event_id, event_seq, currency, partner_id, touch_id, kind, weight, amount, credit"
        )
        return (
            f"CREATE TEMPORARY VIEW replay_rows AS SELECT {columns}, ord FROM {self.halves[0]}"
            f" UNION ALL SELECT {columns}, ord + {first} AS ord FROM {self.halves[1]}"
        )

    def build_partition(
        self,
        insert_half: Callable[[Connection, str, str], None],
        timer: Callable[[str, float], None] | None = None,
    ) -> str:
        """A new table for the program's partition (``partitions.new_table``), committed, with
        every row of both halves (``insert_half(connection, table, half)`` writes one half),
        then the parent's indexes and constraints, each step in both helpers at once. Returns
        the table's name; ``timer(step, seconds)`` hears how long each step took."""
        table, create = partitions.new_table(self.program_id)
        self._committed([create], {})
        started = time.perf_counter()

        def half(h: int) -> None:
            with self.engine.connect() as connection, connection.begin():
                connection.execute(sa.text(f"SET LOCAL work_mem = '{self.work_mem}'"))
                insert_half(connection, table, self.halves[h])

        self._both(half)
        if timer is not None:
            timer("insert attributions (2 backends)", time.perf_counter() - started)
        started = time.perf_counter()
        with self.engine.connect() as connection:
            creates, constraints = partitions.index_statements(connection, table)

        def indexes(h: int) -> None:
            # Each build may still use parallel workers: the first scan of the new rows (made
            # by other transactions) sets their hint bits and writes the pages out, which
            # leaves a core idle at times (measured: 12.9 s with workers, 14.1 s without).
            self._committed(creates[h::2], {})

        self._both(indexes)
        self._committed([constraints], {})
        if timer is not None:
            timer("build indexes (2 backends)", time.perf_counter() - started)
        return table

    def start_partition(
        self,
        insert_half: Callable[[Connection, str, str], None],
        timer: Callable[[str, float], None] | None = None,
    ) -> Callable[[], str]:
        """:meth:`build_partition` in the background, while the replay's own connection goes
        on; the function returned waits for it and gives the table's name (or raises)."""
        built: list[str] = []
        errors: list[BaseException] = []

        def build() -> None:
            try:
                built.append(self.build_partition(insert_half, timer))
            except BaseException as error:  # re-raised by wait()
                errors.append(error)

        thread = threading.Thread(target=build)
        thread.start()

        def wait() -> str:
            thread.join()
            if errors:
                raise errors[0]
            return built[0]

        return wait

    def scratch_tables(self) -> list[str]:
        return [self.touches, *self.halves]

    def _committed(self, statements: list[str], params: dict[str, Any]) -> None:
        with self.engine.connect() as connection, connection.begin():
            connection.execute(sa.text(f"SET LOCAL work_mem = '{self.work_mem}'"))
            connection.execute(sa.text(f"SET LOCAL maintenance_work_mem = '{self.work_mem}'"))
            for sql in statements:
                connection.execute(sa.text(sql), params)

    def _both(self, work: Callable[[int], None]) -> None:
        """``work(0)`` and ``work(1)`` at once, each in a thread of its own (the database does
        the work; the threads wait on it); the first error is raised."""
        errors: list[BaseException] = []

        def run(h: int) -> None:
            try:
                work(h)
            except BaseException as error:  # re-raised in the caller's thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(h,)) for h in HALVES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
