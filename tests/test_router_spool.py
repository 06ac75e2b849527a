"""The on-disk spool and the recorder's fall-back to it (both databases)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from openpartner.clicks.writer import ClickRecord, record_clicks
from openpartner.core.ids import new_id
from openpartner.db.migrate import upgrade
from openpartner.router.app import router_engine
from openpartner.router.recorder import FLUSH_MAX_CLICKS, Recorder, RouterStats
from openpartner.router.spool import SEGMENT_MAX_BYTES, Spool, encode
from tests.router_support import (
    Outage,
    RouterDatabase,
    Seeded,
    count_clicks,
    router_database,
    router_settings,
    seed_link,
)

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def records(link: Seeded | None, n: int, start: int = 0) -> list[ClickRecord]:
    return [
        ClickRecord(
            id=new_id("clk"),
            link_id=link.link_id if link else "lnk_x",
            partner_id=link.partner_id if link else "ptn_x",
            program_id=link.program_id if link else "prg_x",
            clicked_at=T0 + timedelta(milliseconds=start + i),
            ip_hash=f"ip{i:060d}",
            visitor_hash=f"v{start + i:062d}",
            user_agent='Mozilla/5.0 \u00e9\t"quoted"\n',
            referer=None,
            landing_url="https://acme.example/?cref=x",
            utm_source="news",
            utm_medium=None,
            utm_campaign=None,
            utm_term=None,
            utm_content=None,
            country="FR",
            source="router",
            bot=False,
        )
        for i in range(n)
    ]


def test_batches_are_replayed_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**7)
    first, second = records(None, 3), records(None, 2, start=10)
    assert spool.append(first) and spool.append(second)
    assert spool.has_pending()
    segment = spool.claim_next()
    assert segment is not None and segment.records == first + second
    spool.done(segment)
    assert spool.claim_next() is None and not spool.has_pending()
    assert spool.size_bytes() == 0


def test_a_full_spool_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    batch = records(None, 10)
    size = sum(len(encode(r)) for r in batch)
    spool = Spool(tmp_path, max_bytes=size + 10)
    assert spool.append(batch)
    assert not spool.append(records(None, 1))
    segment = spool.claim_next()
    assert segment is not None and segment.records == batch
    spool.release(segment)


def test_segments_are_closed_at_about_a_megabyte(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**8)
    batch_bytes = len("".join(encode(record) for record in records(None, 100)))
    for _ in range(50):
        assert spool.append(records(None, 100))
    spool.close_active()
    sizes = sorted(path.stat().st_size for path in tmp_path.glob("*.jsonl"))
    assert SEGMENT_MAX_BYTES == 1024 * 1024 and len(sizes) >= 2
    assert all(size <= SEGMENT_MAX_BYTES + batch_bytes for size in sizes)
    assert sum(size >= SEGMENT_MAX_BYTES for size in sizes) == len(sizes) - 1  # all but the last


def test_a_live_process_segment_is_left_alone(tmp_path: Path) -> None:
    owner, other = Spool(tmp_path, 10**7), Spool(tmp_path, 10**7)
    owner.append(records(None, 2))
    assert other.has_pending() and other.claim_next() is None  # still being written
    owner.close_active()
    segment = other.claim_next()
    assert segment is not None and len(segment.records) == 2
    assert owner.claim_next() is None  # locked by the other replayer
    other.done(segment)


def test_the_segment_of_a_process_that_died_is_recovered(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from openpartner.router.spool import Spool\n"
        "from openpartner.router.spool import decode\n"
        "Spool(Path(sys.argv[1]), 10**7).append([decode(line) for line in sys.argv[2:]])\n"
        "os._exit(0)  # dies holding its active segment, never closed\n"
    )
    lines = [encode(r) for r in records(None, 4)]
    subprocess.run([sys.executable, "-c", script, str(tmp_path), *lines], check=True)
    assert [p.suffix for p in tmp_path.iterdir()] == [".open"]
    spool = Spool(tmp_path, 10**7)
    segment = spool.claim_next()
    assert segment is not None and len(segment.records) == 4
    spool.done(segment)


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10**7)
    spool.append(records(None, 2))
    spool.close_active()
    (path,) = tmp_path.iterdir()
    with path.open("a") as handle:
        handle.write(encode(records(None, 1)[0])[:40])  # the crash happened mid-write
    segment = spool.claim_next()
    assert segment is not None and len(segment.records) == 2
    spool.done(segment)


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


def test_recorder_spools_while_the_database_is_unreachable_and_replays_once(
    db: RouterDatabase, tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    outage = Outage(db.url)
    settings = router_settings(
        outage.router_url, tmp_path, router_write_lock_wait_ms=Outage.LOCK_WAIT_MS
    )
    engine = router_engine(settings)
    stats = RouterStats()
    spool = Spool(tmp_path / "spool", 10**8)
    recorder = Recorder(sessionmaker(bind=engine), spool, stats, interval=0.05, buffer_max=10**6)
    before, during, after = records(link, 5), records(link, 7, 100), records(link, 3, 200)

    async def run() -> None:
        for record in before:
            recorder.add(record)
        await recorder.flush()
        outage.begin()
        for record in during:
            recorder.add(record)
        await recorder.flush()
        assert not stats.database_up and stats.clicks_spooled == 7
        outage.end()
        recorder._last_probe = 0.0  # probe now rather than within the second
        for record in after:
            recorder.add(record)
        await recorder.flush()

    try:
        asyncio.run(run())
    finally:
        outage.close()
        engine.dispose()
    assert stats.database_up and stats.clicks_dropped == 0
    assert stats.clicks_written == 5 and stats.clicks_replayed == 10
    assert not spool.has_pending()
    assert count_clicks(db.engine, link_id=link.link_id) == 15


def test_a_backlog_is_written_in_bounded_batches(db: RouterDatabase, tmp_path: Path) -> None:
    # Each transaction holds the writers' lock: a backlog goes in batches, the oldest first.
    link = seed_link(db.engine)
    engine = router_engine(router_settings(db.url, tmp_path))
    stats = RouterStats()
    recorder = Recorder(
        sessionmaker(bind=engine),
        Spool(tmp_path / "spool", 10**8),
        stats,
        interval=0.05,
        buffer_max=10**6,
    )
    backlog = records(link, FLUSH_MAX_CLICKS + 3)

    async def run() -> None:
        for record in backlog:
            recorder.add(record)
        await recorder.flush()
        assert stats.clicks_written == FLUSH_MAX_CLICKS and recorder.buffer == backlog[-3:]
        await recorder.flush()

    asyncio.run(run())
    engine.dispose()
    assert stats.clicks_written == len(backlog) and stats.clicks_spooled == 0
    assert count_clicks(db.engine, link_id=link.link_id) == len(backlog)


def test_a_replayed_batch_that_had_landed_is_not_written_twice(
    db: RouterDatabase, tmp_path: Path
) -> None:
    # The commit went through but its acknowledgement was lost: the batch was spooled too.
    link = seed_link(db.engine)
    batch = records(link, 6)
    with Session(db.engine) as session, session.begin():
        record_clicks(session, batch[:4])
    spool = Spool(tmp_path, 10**7)
    spool.append(batch)
    stats = RouterStats()
    recorder = Recorder(sessionmaker(bind=db.engine), spool, stats, interval=0.05, buffer_max=100)
    recorder.flush_sync([])
    assert count_clicks(db.engine, link_id=link.link_id) == 6
    assert stats.clicks_replayed == 2 and not spool.has_pending()


def test_a_click_answered_after_the_final_flush_goes_to_the_spool(tmp_path: Path) -> None:
    # The server may still answer a request while the app shuts down; that click must not wait
    # in a buffer nobody will flush again.
    spool = Spool(tmp_path, 10**7)
    engine = router_engine(router_settings("sqlite:///" + str(tmp_path / "none.db"), tmp_path))
    recorder = Recorder(
        sessionmaker(bind=engine), spool, RouterStats(), interval=0.05, buffer_max=10
    )

    async def run() -> None:
        recorder.start()
        await recorder.stop()
        recorder.add(records(None, 1)[0])

    asyncio.run(run())
    engine.dispose()
    segment = Spool(tmp_path, 10**7).claim_next()
    assert segment is not None and len(segment.records) == 1
    segment.handle.close()


def test_a_flush_waits_for_the_sqlite_write_lock_instead_of_spooling(tmp_path: Path) -> None:
    # Two router workers on one SQLite file take turns at the write lock; a flush that finds it
    # taken waits for it: the database is busy, not unreachable.
    path = tmp_path / "router.db"
    engine = router_engine(router_settings(f"sqlite:///{path}", tmp_path))
    upgrade(engine)
    spool = Spool(tmp_path / "spool", 10**7)
    stats = RouterStats()
    recorder = Recorder(sessionmaker(bind=engine), spool, stats, interval=0.05, buffer_max=100)
    other_worker = sqlite3.connect(path, isolation_level=None)
    other_worker.execute("BEGIN IMMEDIATE")
    flush = threading.Thread(target=recorder.flush_sync, args=(records(None, 3),))
    flush.start()
    time.sleep(2.5)  # longer than the busy wait that used to give up and spool
    other_worker.execute("COMMIT")
    flush.join()
    other_worker.close()
    engine.dispose()
    assert stats.database_up and stats.clicks_spooled == 0
    assert stats.clicks_written == 3 and not spool.has_pending()
