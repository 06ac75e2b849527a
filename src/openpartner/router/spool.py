"""The on-disk spool: where clicks wait while the database is unreachable.

Files in one directory shared by every router process on the host. A process appends batches to
its own *active* segment (``<time>-<pid>-<n>.open``, held with ``flock`` while open) and closes it
(renamed to ``.jsonl``) when it grows or ages past a limit, or when replay starts. Any process
replays closed segments oldest first, each in one transaction, and deletes a segment only after
that transaction committed. An active segment whose lock can be taken belongs to a process that
died; it is closed and replayed like the others. A crash while appending can leave a torn last
line, which is skipped. Replays skip clicks already stored, so a segment replayed twice (a crash
between commit and delete) is still written once. The folder and its files are owner-only.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from openpartner.clicks.writer import ClickRecord
from openpartner.core.files import open_private, private_dir

log = logging.getLogger(__name__)

# About 1 MB per segment: a replay is one transaction per segment (a few thousand clicks, well
# under a second), and the bounded spool is freed segment by segment as the replay goes.
SEGMENT_MAX_BYTES = 1024 * 1024
SEGMENT_MAX_AGE_SECONDS = 5.0


def encode(record: ClickRecord) -> str:
    return json.dumps([*record[:4], record.clicked_at.isoformat(), *record[5:]]) + "\n"


def decode(line: str) -> ClickRecord:
    values = json.loads(line)
    values[4] = datetime.fromisoformat(values[4])
    return ClickRecord(*values)


@dataclass
class Segment:
    path: Path
    handle: IO[str]
    records: list[ClickRecord]


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._active: IO[str] | None = None
        self._active_path: Path | None = None
        self._active_since = 0.0
        self._counter = 0
        private_dir(directory)

    def append(self, records: list[ClickRecord]) -> bool:
        """Write ``records`` durably; False (nothing written) when the spool is full."""
        data = "".join(encode(record) for record in records)
        if self.size_bytes() + len(data) > self.max_bytes:
            return False
        handle = self._active_handle()
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        if (
            handle.tell() >= SEGMENT_MAX_BYTES
            or time.monotonic() - self._active_since >= SEGMENT_MAX_AGE_SECONDS
        ):
            self.close_active()
        return True

    def close_active(self) -> None:
        """Close this process's active segment so it can be replayed."""
        if self._active is None or self._active_path is None:
            return
        closed = self._active_path.with_suffix(".jsonl")
        os.rename(self._active_path, closed)
        self._active.close()  # releases the lock
        self._active = self._active_path = None

    def has_pending(self, *, others_active: bool = True) -> bool:
        """Whether clicks wait here; ``others_active=False`` ignores segments other processes
        are still writing (which only they can close)."""
        if self._active is not None:
            return True
        suffixes = (".jsonl", ".open") if others_active else (".jsonl",)
        return any(name.endswith(suffixes) for name in os.listdir(self.directory))

    def claim_next(self) -> Segment | None:
        """The oldest closed segment no other process is replaying, locked for us."""
        self.close_active()
        self._close_orphans()
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".jsonl"):
                continue
            path = self.directory / name
            try:
                handle = path.open("r", encoding="utf-8")
            except FileNotFoundError:
                continue
            if not _try_lock(handle) or not _same_file(handle, path):
                handle.close()
                continue
            return Segment(path=path, handle=handle, records=_read(handle, path))
        return None

    def done(self, segment: Segment) -> None:
        """The segment's clicks are committed: delete it (still holding the lock)."""
        segment.path.unlink(missing_ok=True)
        segment.handle.close()

    def release(self, segment: Segment) -> None:
        segment.handle.close()

    def size_bytes(self) -> int:
        total = 0
        for entry in os.scandir(self.directory):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def segments(self) -> int:
        return sum(1 for name in os.listdir(self.directory) if name.endswith((".jsonl", ".open")))

    def _active_handle(self) -> IO[str]:
        if self._active is None:
            self._counter += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._counter:06d}.open"
            path = self.directory / name
            handle = open_private(path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._active, self._active_path = handle, path
            self._active_since = time.monotonic()
        return self._active

    def _close_orphans(self) -> None:
        for name in os.listdir(self.directory):
            if not name.endswith(".open"):
                continue
            path = self.directory / name
            try:
                handle = path.open("r", encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                # Our own active segment, or a live process's, is locked; a lock we can take
                # belongs to a process that died.
                if _try_lock(handle) and _same_file(handle, path):
                    log.warning("spool: recovering %s from a process that stopped", name)
                    os.rename(path, path.with_suffix(".jsonl"))
            finally:
                handle.close()


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(handle: IO[str], path: Path) -> bool:
    # Another process may have replayed and deleted (or renamed) it after we opened it.
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _read(handle: IO[str], path: Path) -> list[ClickRecord]:
    records = []
    for number, line in enumerate(handle, 1):
        if not line.endswith("\n"):
            log.warning("spool: %s line %d is torn (crash while writing); skipped", path, number)
            break
        records.append(decode(line))
    return records
