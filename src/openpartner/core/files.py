"""Files only their owner can read: the SQLite database, the server secret, the click spool and
the router's link snapshot hold hashes, customer ids, partner emails and keys' hashes. Created
0700 (folders) and 0600 (files) whatever the process's umask lets through; existing ones are
left as they are (the folder may be one the operator chose and shares)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` and any missing parents, each created owner-only."""
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=DIR_MODE)
    return path


def create_private(path: Path) -> bool:
    """An empty owner-only file at ``path`` unless one exists; True if this call made it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        return False
    return True


def open_private(path: Path, mode: str = "a") -> IO[str]:
    """``path`` opened for text writing (``"a"``, ``"w"`` or ``"x"``), created owner-only."""
    flags = os.O_WRONLY | os.O_CREAT
    flags |= {"a": os.O_APPEND, "w": os.O_TRUNC, "x": os.O_EXCL}[mode]
    return os.fdopen(os.open(path, flags, FILE_MODE), mode, encoding="utf-8")
