"""The last link table the router loaded, kept on disk so that a router started while the
database is unreachable still redirects (its clicks go to the spool as usual).

Written after every full load from the database (at start, every
``ROUTER_CACHE_RELOAD_SECONDS`` and after an outage), atomically: a temporary file in the same
folder, flushed to disk, then renamed over the previous snapshot, so a reader sees the old table
or the new one, never half of one. Every router process on the host writes the same file; the
last rename wins. Owner-only (``core/files.py``): it holds every link's destination. It holds
the rows as loaded (programs and links), not compiled entries, so destinations are checked
against the allowed domains again when it is read.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from openpartner.core.files import open_private, private_dir
from openpartner.core.time import utc_now

FORMAT = 1
FILE_NAME = "router-links.json"
_CHUNK = 1000


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Snapshot:
    written_at: datetime
    programs: list[Any]
    """Rows with the attributes of ``cache._PROGRAM_COLUMNS``."""
    links: list[Any]
    """Rows with the attributes of ``cache._LINK_COLUMNS``."""


def write(path: Path, programs: list[dict[str, Any]], links: list[dict[str, Any]]) -> None:
    private_dir(path.parent)
    head = {"format": FORMAT, "written_at": utc_now().isoformat(), "programs": programs}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(temporary, "w") as handle:
            handle.write(_dumps(head)[:-1] + ',"links":[')
            # A thousand links per encoder call: one call holds the GIL throughout (0.24 s for
            # 100,000 links at once), and the requests of this process wait for it.
            for start in range(0, len(links), _CHUNK):
                handle.write(("," if start else "") + _dumps(links[start : start + _CHUNK])[1:-1])
            handle.write("]}")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    # The rename itself durable: the folder's entry, flushed.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, or None when there is none (or none this version reads)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        return None
    return Snapshot(
        written_at=datetime.fromisoformat(body["written_at"]),
        programs=[SimpleNamespace(**row) for row in body["programs"]],
        links=[SimpleNamespace(**row) for row in body["links"]],
    )
