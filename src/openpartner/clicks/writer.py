"""Writing clicks (router and API alike). The history-dependent flags are computed here, at
write time, against the database, so they hold however many router processes feed it.

``record_clicks`` is called by the router's flusher (a batch every flush interval, or a spool
segment on replay) and by ``POST /v1/clicks`` (a batch of one). Writers are serialized — an
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite — so two processes flushing clicks of
the same visitor at the same moment still flag exactly one of them as the original.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.clicks.history import clicks_in_minutes, latest_clicks
from openpartner.clicks.models import Click
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

DUPLICATE_WINDOW = timedelta(hours=1)
DEFAULT_VELOCITY_LIMIT = 20
# A chunk is written and then visible to the next chunk's look-ups inside the same transaction,
# so a long spool replay is flagged as if its clicks had arrived one by one.
CHUNK_MAX_CLICKS = 2000
CHUNK_MAX_SPAN = timedelta(minutes=1)
CONCURRENT_SLACK = timedelta(minutes=1)
_WRITER_LOCK = 0x6F705F636C6B  # "op_clk": the PostgreSQL advisory lock serializing writers


class ClickRecord(NamedTuple):
    """A click as the router (or the API) captured it, before the history-dependent flags."""

    id: str
    link_id: str
    partner_id: str
    program_id: str
    clicked_at: datetime
    ip_hash: str
    visitor_hash: str
    user_agent: str | None
    referer: str | None
    landing_url: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    country: str | None
    source: str
    bot: bool


COLUMNS = (*ClickRecord._fields, "duplicate", "velocity", "revoked")
_COPY_TYPES = ["text"] * 4 + ["timestamptz"] + ["text"] * 12 + ["bool"] * 4


def clean_text(value: str | None, limit: int) -> str | None:
    """Fit a client-supplied string to its column. A NUL or an over-long value would make the
    whole batch fail to write, so it is stripped or cut here, when the click is captured."""
    if not value:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] or None


UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
Utm = tuple[str | None, str | None, str | None, str | None, str | None]
NO_UTM: Utm = (None, None, None, None, None)


def utm_fields(query: str) -> Utm:
    """The ``utm_*`` values of a query string (first occurrence of each), fitted to columns."""
    if "utm_" not in query:
        return NO_UTM
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, encoding="utf-8", errors="replace"):
        if name in UTM_FIELDS and name not in values:
            values[name] = value
    source, medium, campaign, term, content = (
        clean_text(values.get(name), 255) for name in UTM_FIELDS
    )
    return source, medium, campaign, term, content


def record_clicks(
    session: Session, records: Sequence[ClickRecord], *, skip_existing: bool = False
) -> int:
    """Flag and insert ``records``; returns how many rows were written.

    ``skip_existing`` (spool replays) drops records whose id is already stored: a batch whose
    commit was in flight when the connection broke may or may not have landed, and replaying it
    must not write it twice.
    """
    if not records:
        return 0
    _serialize_writers(session)
    if skip_existing:
        records = _not_yet_stored(session, records)
    ordered = sorted(records, key=attrgetter("clicked_at"))
    revoked = set(
        session.scalars(
            sa.select(Partner.id).where(
                Partner.id.in_({r.partner_id for r in ordered}), Partner.status != "active"
            )
        )
    )
    limits: dict[str, int] = dict(
        session.execute(
            sa.select(Program.id, Program.velocity_limit_per_minute).where(
                Program.id.in_({r.program_id for r in ordered})
            )
        ).all()
    )
    for chunk in _chunks(ordered):
        duplicate = _duplicates(session, chunk)
        velocity = _velocity(session, chunk, limits)
        rows = [
            (*r, d, v, r.partner_id in revoked)
            for r, d, v in zip(chunk, duplicate, velocity, strict=True)
        ]
        _insert(session, rows)
    return len(ordered)


def _serialize_writers(session: Session) -> None:
    # SQLite already serializes writers (every transaction is BEGIN IMMEDIATE). On PostgreSQL
    # the look-ups below must not interleave with another router's insert of the same visitor.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_WRITER_LOCK)))


def _not_yet_stored(session: Session, records: Sequence[ClickRecord]) -> list[ClickRecord]:
    stored: set[str] = set()
    for start in range(0, len(records), 1000):
        ids = [r.id for r in records[start : start + 1000]]
        stored.update(session.scalars(sa.select(Click.id).where(Click.id.in_(ids))))
    return [r for r in records if r.id not in stored]


def _chunks(ordered: list[ClickRecord]) -> Iterator[list[ClickRecord]]:
    if (
        len(ordered) <= CHUNK_MAX_CLICKS
        and ordered[-1].clicked_at - ordered[0].clicked_at <= CHUNK_MAX_SPAN
    ):
        yield ordered  # a live flush: always one chunk
        return
    chunk: list[ClickRecord] = []
    end = ordered[0].clicked_at
    for record in ordered:
        if chunk and (len(chunk) >= CHUNK_MAX_CLICKS or record.clicked_at > end):
            yield chunk
            chunk = []
        if not chunk:
            end = record.clicked_at + CHUNK_MAX_SPAN
        chunk.append(record)
    if chunk:
        yield chunk


def _duplicates(session: Session, chunk: list[ClickRecord]) -> list[bool]:
    """Per click: did its visitor already click the same link within the hour before, or
    within this flush window through another router process?"""
    lo = chunk[0].clicked_at - DUPLICATE_WINDOW
    # Look a little past the chunk too: another router may have flushed a click of the same
    # visitor stamped moments after ours (a minute is far more than any flush lag).
    hi = chunk[-1].clicked_at + CONCURRENT_SLACK
    pairs = list(zip([r.link_id for r in chunk], [r.visitor_hash for r in chunk], strict=True))
    distinct = list(dict.fromkeys(pairs))
    last: dict[tuple[str, str], datetime] = {
        pair: latest
        for pair, latest in zip(distinct, latest_clicks(session, distinct, lo, hi), strict=True)
        if latest is not None
    }
    window = DUPLICATE_WINDOW
    flags = []
    for pair, at in zip(pairs, [r.clicked_at for r in chunk], strict=True):
        previous = last.get(pair)
        if previous is None:
            flags.append(False)
            last[pair] = at
        else:
            # ``previous`` may be later than this click when another router wrote it meanwhile;
            # then this one is the duplicate, so a visitor-hour still has one unflagged click.
            flags.append(at - previous < window)
            if at > previous:
                last[pair] = at
    return flags


def _minutes(chunk: list[ClickRecord]) -> list[int]:
    """The clock minute (minutes since the epoch) of each click."""
    return [int(at.timestamp()) // 60 for at in [r.clicked_at for r in chunk]]


def _velocity(session: Session, chunk: list[ClickRecord], limits: dict[str, int]) -> list[bool]:
    """Per click: is it beyond the program's limit for its (link, IP hash, clock minute)?"""
    keys = list(
        zip([r.link_id for r in chunk], [r.ip_hash for r in chunk], _minutes(chunk), strict=True)
    )
    distinct = list(dict.fromkeys(keys))
    cap = max(limits.values(), default=DEFAULT_VELOCITY_LIMIT) + 1
    seen = dict(zip(distinct, clicks_in_minutes(session, distinct, cap), strict=True))
    flags = []
    for key, program_id in zip(keys, [r.program_id for r in chunk], strict=True):
        count = seen[key] + 1
        seen[key] = count
        flags.append(count > limits.get(program_id, DEFAULT_VELOCITY_LIMIT))
    return flags


def _insert(session: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # COPY: one round trip and no per-row statement, the cheapest way in.
        driver = connection.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY clicks ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            # Binary, with the types given up front: about 6x less client CPU per row than text.
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        return
    connection.execute(
        sa.insert(Click.__table__),  # type: ignore[arg-type]
        [dict(zip(COLUMNS, row, strict=True)) for row in rows],
    )
