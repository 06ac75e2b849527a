"""The router's in-process link cache: every link, compiled for a string-concatenation redirect.

Loaded whole at start (a request never waits for the database, and an unknown key is a 404 with
no look-up), then kept fresh by polling ``router_invalidations``, which the link and program
services write in the same transaction as each change. A full reload runs periodically and after
any polling outage, as the safety net for changes made outside the API.

The cache is mutated only from one worker thread; request handlers only read it. Single dict
operations are atomic in CPython, and a full reload swaps in whole new dicts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.core.errors import ValidationFailed
from openpartner.core.time import utc_now
from openpartner.core.urls import validate_destination
from openpartner.links.models import Link
from openpartner.programs.models import Program
from openpartner.router.models import RouterInvalidation
from openpartner.router.target import compile_target, cookie_header

log = logging.getLogger(__name__)

POLL_BATCH = 5000
GAP_TTL_SECONDS = 60.0  # a sequence number still missing after this was rolled back
INVALIDATION_RETENTION = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ProgramEntry:
    id: str
    archived: bool
    default_destination: str
    allowed_domains: list[str]
    click_param: str
    cookie_name: str
    cookie_domain: str | None
    cookie_days: int
    cookie_secure: tuple[str, str]
    """``Set-Cookie`` around the click id: ``head + click_id + tail``."""
    cookie_insecure: tuple[str, str]
    """The same without ``Secure``, for plain-HTTP ``*.localhost`` development."""


@dataclass(frozen=True, slots=True)
class LinkEntry:
    id: str
    key: str
    partner_id: str
    program_id: str
    gone: bool
    """Archived link or program: 410."""
    prefix: str
    suffix: str
    """The redirect is ``prefix + click_id + suffix``."""
    plain: str
    """The destination without a click id (answer to HEAD probes)."""
    program: ProgramEntry


_PROGRAM_COLUMNS = (
    Program.id,
    Program.archived,
    Program.default_destination_url,
    Program.allowed_domains,
    Program.click_param,
    Program.cookie_name,
    Program.cookie_domain,
    Program.cookie_lifetime_days,
)
_LINK_COLUMNS = (
    Link.id,
    Link.key,
    Link.partner_id,
    Link.program_id,
    Link.destination_url,
    Link.archived,
)


def _program(row: Any, http_only: bool) -> ProgramEntry:
    cookies = []
    for secure in (True, False):
        header = cookie_header(
            row.cookie_name,
            "",
            domain=row.cookie_domain,
            max_age_days=row.cookie_lifetime_days,
            secure=secure,
            http_only=http_only,
        )
        head, tail = header.split(";", 1)
        cookies.append((head, ";" + tail))
    return ProgramEntry(
        id=row.id,
        archived=row.archived,
        default_destination=row.default_destination_url,
        allowed_domains=list(row.allowed_domains),
        click_param=row.click_param,
        cookie_name=row.cookie_name,
        cookie_domain=row.cookie_domain,
        cookie_days=row.cookie_lifetime_days,
        cookie_secure=cookies[0],
        cookie_insecure=cookies[1],
    )


def _link(row: Any, program: ProgramEntry) -> LinkEntry:
    destination = row.destination_url or program.default_destination
    gone = bool(row.archived or program.archived)
    # Destinations were validated when saved; they are checked again against the program's
    # current allowed domains, so narrowing those can never leave an open redirect behind.
    for candidate in (destination, program.default_destination):
        try:
            target = validate_destination(candidate, program.allowed_domains)
            prefix, suffix = compile_target(target, program.click_param)
            break
        except ValidationFailed:
            log.warning("link %s: destination %r is no longer allowed", row.id, candidate)
    else:
        prefix, suffix, gone = "", "", True
    # Drop "?cref=" or "&cref=" from the end of the prefix.
    plain = prefix[: -(len(program.click_param) + 2)] + suffix if prefix else ""
    return LinkEntry(
        id=row.id,
        key=row.key,
        partner_id=row.partner_id,
        program_id=row.program_id,
        gone=gone,
        prefix=prefix,
        suffix=suffix,
        plain=plain,
        program=program,
    )


class LinkCache:
    def __init__(self, *, http_only: bool = True) -> None:
        self.http_only = http_only
        self.links: dict[str, LinkEntry] = {}
        self._key_by_id: dict[str, str] = {}
        self._programs: dict[str, ProgramEntry] = {}
        self.watermark = 0
        self._gaps: dict[int, float] = {}
        self.loaded = False
        self.source = "none"
        """Where the links came from: ``database``, or ``snapshot`` (``snapshot.py``) when the
        database could not be reached at start; ``none`` before either."""
        self.last_full_load = 0.0
        self.last_prune = 0.0

    def get(self, key: str) -> LinkEntry | None:
        return self.links.get(key)

    @property
    def live(self) -> bool:
        """Loaded from the database (not only from a snapshot)."""
        return self.source == "database"

    def load_all(self, session: Session) -> tuple[Sequence[Any], Sequence[Any]]:
        """Every program and link from the database; returns the rows (for a snapshot)."""
        # Read the watermark first: a change committed during the load is seen again by the
        # next poll, which is harmless; the other order could miss it.
        watermark = session.scalar(sa.select(sa.func.max(RouterInvalidation.seq))) or 0
        program_rows = session.execute(sa.select(*_PROGRAM_COLUMNS)).all()
        link_rows = session.execute(sa.select(*_LINK_COLUMNS)).all()
        self._replace(program_rows, link_rows)
        self.watermark = watermark
        self._gaps.clear()
        self.source = "database"
        self.last_full_load = time.monotonic()
        return program_rows, link_rows

    def load_snapshot(self, program_rows: Iterable[Any], link_rows: Iterable[Any]) -> None:
        """The links of a snapshot, until the database answers (the next load is a full one)."""
        self._replace(program_rows, link_rows)
        self.source = "snapshot"

    def _replace(self, program_rows: Iterable[Any], link_rows: Iterable[Any]) -> None:
        programs = {row.id: _program(row, self.http_only) for row in program_rows}
        links: dict[str, LinkEntry] = {}
        key_by_id: dict[str, str] = {}
        for row in link_rows:
            program = programs.get(row.program_id)
            if program is not None:
                links[row.key] = _link(row, program)
                key_by_id[row.id] = row.key
        self._programs, self._key_by_id, self.links = programs, key_by_id, links
        self.loaded = True

    def poll(self, session: Session) -> int:
        """Apply the changes committed since the last poll; returns how many were seen."""
        condition = RouterInvalidation.seq > self.watermark
        if self._gaps:
            condition = condition | RouterInvalidation.seq.in_(list(self._gaps))
        rows = session.execute(
            sa.select(RouterInvalidation.seq, RouterInvalidation.kind, RouterInvalidation.ref_id)
            .where(condition)
            .order_by(RouterInvalidation.seq)
            .limit(POLL_BATCH)
        ).all()
        if len(rows) == POLL_BATCH:
            self.load_all(session)
            return len(rows)
        self._track_gaps([row.seq for row in rows])
        self._apply(
            session,
            link_ids={row.ref_id for row in rows if row.kind == "link"},
            program_ids={row.ref_id for row in rows if row.kind == "program"},
        )
        return len(rows)

    def prune(self, session: Session) -> None:
        session.execute(
            sa.delete(RouterInvalidation).where(
                RouterInvalidation.created_at < utc_now() - INVALIDATION_RETENTION
            )
        )

    def _track_gaps(self, seqs: list[int]) -> None:
        # On PostgreSQL sequence numbers are taken at insert and become visible at commit, so
        # seq 11 can be seen before seq 10. A number skipped over is re-asked for a while.
        now = time.monotonic()
        seen = set(seqs)
        for seq in seen:
            self._gaps.pop(seq, None)
        top = max(seen, default=self.watermark)
        if top > self.watermark:
            missing = [s for s in range(self.watermark + 1, top) if s not in seen]
            if len(missing) > POLL_BATCH:
                self.last_full_load = 0.0  # too many to track: the next tick reloads fully
            else:
                self._gaps.update(dict.fromkeys(missing, now))
            self.watermark = top
        for seq, since in list(self._gaps.items()):
            if now - since > GAP_TTL_SECONDS:
                del self._gaps[seq]

    def _apply(self, session: Session, *, link_ids: set[str], program_ids: set[str]) -> None:
        for row in session.execute(sa.select(*_PROGRAM_COLUMNS).where(Program.id.in_(program_ids))):
            self._programs[row.id] = _program(row, self.http_only)
        rows: list[Any] = []
        if program_ids:
            rows += session.execute(
                sa.select(*_LINK_COLUMNS).where(Link.program_id.in_(program_ids))
            ).all()
        if link_ids:
            rows += session.execute(sa.select(*_LINK_COLUMNS).where(Link.id.in_(link_ids))).all()
        missing = {row.program_id for row in rows} - self._programs.keys()
        if missing:
            for row in session.execute(sa.select(*_PROGRAM_COLUMNS).where(Program.id.in_(missing))):
                self._programs[row.id] = _program(row, self.http_only)
        self._store(rows)

    def _store(self, rows: Iterable[Any]) -> None:
        for row in rows:
            program = self._programs.get(row.program_id)
            if program is None:
                continue
            old_key = self._key_by_id.get(row.id)
            if old_key is not None and old_key != row.key:
                self.links.pop(old_key, None)
            self.links[row.key] = _link(row, program)
            self._key_by_id[row.id] = row.key

    def __len__(self) -> int:
        return len(self.links)
