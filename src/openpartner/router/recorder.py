"""Recording off the hot path: an in-memory buffer, flushed in batches by one worker thread.

The request handler only appends to ``Recorder.buffer``. Every flush interval the event loop
swaps the buffer out and hands the batch to the flush thread, which writes it in one
transaction (``clicks.writer.record_clicks``). When the database is unreachable the batch goes to
the on-disk spool instead, and so does every later batch until the spool has been replayed in
order, so clicks reach the table in the order they were taken.

Loss: a crash loses the buffer and a batch being written at that moment — one flush interval
while the database keeps up, the whole backlog when clicks arrive faster than it can write them
(``buffer_depth`` on ``/health`` shows which); a clean shutdown flushes everything (to the
database or the spool). ``dropped`` counts clicks lost to a full spool or an over-full buffer and
is expected to stay 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from openpartner.clicks.writer import ClickRecord, record_clicks
from openpartner.core.files import open_private
from openpartner.router.spool import Spool, encode

log = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0
DRAIN_BUDGET_SECONDS = 0.25
SHUTDOWN_PATIENCE = 10.0
# One transaction holds the writers' lock for its whole write: a backlog is written in batches
# of this many clicks, so the other router processes never wait long for their turn.
FLUSH_MAX_CLICKS = 5000
# Errors meaning "the database cannot be reached right now" (keep the clicks and retry), as
# opposed to a click the database refuses (written alone, then set aside in the spool folder).
UNAVAILABLE = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    OSError,
)


@dataclass
class RouterStats:
    """Per-process counters, shown on ``/health`` (and for ``/metrics``)."""

    buffer_depth: int = 0
    clicks_received: int = 0
    clicks_written: int = 0
    clicks_spooled: int = 0
    clicks_replayed: int = 0
    clicks_dropped: int = 0
    clicks_rejected: int = 0
    flushes: int = 0
    flush_ms_last: float = 0.0
    flush_ms_max: float = 0.0
    spool_bytes: int = 0
    spool_segments: int = 0
    database_up: bool = True
    links_source: str = "none"
    """``database``, or ``snapshot`` while a router started during an outage serves the last
    link table it saved (``snapshot.py``)."""

    def snapshot(self) -> dict[str, object]:
        return asdict(self)


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        spool: Spool,
        stats: RouterStats,
        *,
        interval: float,
        buffer_max: int,
    ) -> None:
        self.sessions = sessions
        self.spool = spool
        self.stats = stats
        self.interval = interval
        self.buffer_max = buffer_max
        self.buffer: list[ClickRecord] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="click-flush")
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_probe = 0.0
        self._last_spool_check = 0.0
        self._spool_dirty = True
        self._closed = False

    def add(self, record: ClickRecord) -> None:
        """Hot path: no I/O, no await."""
        if self._closed:
            # A request the server answered after our final flush: nothing will flush the
            # buffer again, so this one click goes straight to the spool.
            self._to_spool([record])
            self.spool.close_active()
            return
        if len(self.buffer) >= self.buffer_max:
            self.stats.clicks_dropped += 1
            return
        self.buffer.append(record)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Flush everything, then stop (clean shutdown loses no click)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        batch, self.buffer = self.buffer, []
        self.stats.clicks_received += len(batch)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.final_flush, batch)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.close_active)
        self._executor.shutdown(wait=True)
        self._closed = True
        if self.buffer:  # answered while the last flush ran
            self._to_spool(self.buffer)
            self.spool.close_active()
            self.buffer = []
        stats = self.stats
        log.info(
            "click recorder stopped: %d received, %d written, %d spooled, %d replayed, "
            "%d dropped, %d rejected, %d left in the spool folder",
            stats.clicks_received,
            stats.clicks_written,
            stats.clicks_spooled,
            stats.clicks_replayed,
            stats.clicks_dropped,
            stats.clicks_rejected,
            self.spool.segments(),
        )

    async def flush(self) -> None:
        if len(self.buffer) > FLUSH_MAX_CLICKS:
            batch, self.buffer = self.buffer[:FLUSH_MAX_CLICKS], self.buffer[FLUSH_MAX_CLICKS:]
        else:
            batch, self.buffer = self.buffer, []
        self.stats.clicks_received += len(batch)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.flush_sync, batch)
        self.stats.buffer_depth = len(self.buffer)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                await self.flush()
            except Exception:
                log.exception("click flush failed")
            # The interval is measured start to start: a slow write delays, never skips, one;
            # a backlog is written at once.
            delay = max(0.0, self.interval - (loop.time() - started))
            if len(self.buffer) >= FLUSH_MAX_CLICKS:
                delay = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    # --- the flush thread ---------------------------------------------------------------

    def flush_sync(self, batch: list[ClickRecord]) -> None:
        started = time.perf_counter()
        if batch:
            if self.stats.database_up and not self._spool_pending():
                self._write_direct(batch)
            else:
                self._to_spool(batch)
        self._probe()
        self._drain()
        if batch:
            elapsed = (time.perf_counter() - started) * 1000
            self.stats.flushes += 1
            self.stats.flush_ms_last = elapsed
            self.stats.flush_ms_max = max(self.stats.flush_ms_max, elapsed)

    def final_flush(self, batch: list[ClickRecord]) -> None:
        """Shutdown: like a flush, but patient. A locked or briefly unreachable database gets a
        few seconds before the clicks are left in the spool (where the next start finds them),
        and the spool is replayed to the end if the database is there."""
        deadline = time.monotonic() + SHUTDOWN_PATIENCE
        self.flush_sync(batch)
        while self.spool.has_pending(others_active=False) and time.monotonic() < deadline:
            self._last_probe = 0.0
            self._probe()
            if self.stats.database_up:
                self._spool_dirty = True
                self._drain(budget=deadline - time.monotonic())
            else:
                time.sleep(0.2)

    def _spool_pending(self) -> bool:
        # Listing the folder every flush would cost a syscall per tick for nothing; it is
        # re-checked every second, and always right after we wrote to it.
        if self._spool_dirty or time.monotonic() - self._last_spool_check >= PROBE_INTERVAL:
            self._spool_dirty = self.spool.has_pending()
            self._last_spool_check = time.monotonic()
        return self._spool_dirty

    def _write_direct(self, batch: list[ClickRecord]) -> None:
        try:
            with self.sessions() as session, session.begin():
                record_clicks(session, batch)
            self.stats.clicks_written += len(batch)
        except UNAVAILABLE as exc:
            log.warning("database unavailable (%s); spooling clicks to disk", exc)
            self.stats.database_up = False
            self._to_spool(batch)
        except Exception:
            log.exception("a batch of %d clicks was refused; writing them one by one", len(batch))
            self._write_one_by_one(batch)

    def _write_one_by_one(self, batch: list[ClickRecord]) -> None:
        for record in batch:
            try:
                with self.sessions() as session, session.begin():
                    record_clicks(session, [record], skip_existing=True)
                self.stats.clicks_written += 1
            except UNAVAILABLE:
                self.stats.database_up = False
                self._to_spool([record])
            except Exception:
                log.exception("click %s refused by the database; set aside", record.id)
                path = self.spool.directory / "rejected.ndjson"
                with open_private(path) as handle:
                    handle.write(encode(record))
                self.stats.clicks_rejected += 1

    def _to_spool(self, batch: list[ClickRecord]) -> None:
        if self.spool.append(batch):
            self.stats.clicks_spooled += len(batch)
        else:
            log.error("spool full: %d clicks dropped", len(batch))
            self.stats.clicks_dropped += len(batch)
        self._spool_dirty = True
        self._refresh_spool_stats()

    def _probe(self) -> None:
        if self.stats.database_up or time.monotonic() - self._last_probe < PROBE_INTERVAL:
            return
        self._last_probe = time.monotonic()
        try:
            with self.sessions() as session:
                session.execute(sa.text("SELECT 1"))
        except UNAVAILABLE:
            return
        log.info("database reachable again; replaying the spool")
        self.stats.database_up = True

    def _drain(self, budget: float = DRAIN_BUDGET_SECONDS) -> None:
        if not self.stats.database_up or not self._spool_dirty:
            return
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            segment = self.spool.claim_next()
            if segment is None:
                self._spool_dirty = self.spool.has_pending()
                break
            try:
                with self.sessions() as session, session.begin():
                    written = record_clicks(session, segment.records, skip_existing=True)
            except UNAVAILABLE:
                self.spool.release(segment)
                self.stats.database_up = False
                break
            except Exception:
                log.exception("spool segment %s refused; replaying it click by click", segment.path)
                self._write_one_by_one(segment.records)
                written = 0
            self.spool.done(segment)
            self.stats.clicks_replayed += written
        self._refresh_spool_stats()

    def _refresh_spool_stats(self) -> None:
        self.stats.spool_bytes = self.spool.size_bytes()
        self.stats.spool_segments = self.spool.segments()


def dumps_stats(stats: RouterStats, links: int, *, ready: bool) -> bytes:
    status = "ok" if ready else "starting"
    # The pid tells the workers apart (the counters are per process; the benchmark waits until
    # it has seen every worker ready).
    body = {"status": status, "pid": os.getpid(), "links": links, **stats.snapshot()}
    return json.dumps(body).encode()
