"""Writing clicks (router and API alike). The history-dependent flags are computed here, at
write time, against the database, so they hold however many router processes feed it.

``record_clicks`` is called by the router's flusher (a batch every flush interval, or a spool
segment on replay) and by ``POST /v1/clicks`` (a batch of one). The batch is staged in a
temporary table, then flagged and inserted by one statement: the database does the per-click
work in C and Python only hands the rows over, which keeps the router's flush thread off the
GIL its requests need. Writers are serialized — an advisory lock on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite — so two processes flushing clicks of the same visitor at the same moment
still flag exactly one of them as the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click

DEFAULT_VELOCITY_LIMIT = 20
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


# The staging table: a batch as captured, in arrival order (``ord``), before its flags.
_STAGING = sa.Table(
    "click_batch",
    sa.MetaData(),
    sa.Column("ord", sa.Integer()),
    *(sa.Column(name, Click.__table__.c[name].type) for name in ClickRecord._fields),
    prefixes=["TEMPORARY"],
)
_STAGING_COLUMNS = ("ord", *ClickRecord._fields)
_COPY_TYPES = ["int4"] + ["text"] * 4 + ["timestamptz"] + ["text"] * 12 + ["bool"]


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
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    connection.exec_driver_sql(_staging_ddl(connection.dialect))
    if postgresql:
        _copy_to_staging(connection, records)
        # The look-ups in _INSERT_FLAGGED must not interleave with another router's insert of
        # the same visitor. Taken after staging, so the lock is held for one statement and the
        # commit (SQLite already serializes writers: every transaction is IMMEDIATE).
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITER_LOCK})")
    else:
        connection.execute(
            _STAGING.insert(),
            [dict(zip(_STAGING_COLUMNS, (i, *r), strict=True)) for i, r in enumerate(records)],
        )
    result = connection.execute(_INSERT_FLAGGED[connection.dialect.name], {"skip": skip_existing})
    if postgresql:
        return int(result.rowcount)
    # Python's sqlite3 reports no row count for a statement that starts with WITH.
    written = connection.exec_driver_sql("SELECT changes()").scalar_one()
    connection.exec_driver_sql("DELETE FROM click_batch")
    return int(written)


def _copy_to_staging(connection: sa.Connection, records: Sequence[ClickRecord]) -> None:
    driver = connection.connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cursor,
        cursor.copy(
            f"COPY click_batch ({', '.join(_STAGING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        # COPY, binary, with the types given up front: one round trip and the least client CPU
        # per row (about 6x less than text).
        copy.set_types(_COPY_TYPES)
        for i, record in enumerate(records):
            copy.write_row((i, *record))


# The batch is staged in a temporary table (per connection; emptied as it is consumed), then
# flagged and inserted by one statement, so the database does the per-click work in C:
#
# - duplicate: an earlier click of the same visitor on the same link less than an hour before,
#   either in this batch (the previous one in time order) or stored. Stored clicks up to a
#   minute *after* count too: another router may have written the visitor's next click first,
#   and then this one is the duplicate, so a visitor-hour keeps exactly one unflagged click.
# - velocity: the click's rank among this batch's clicks of its (link, IP hash, clock minute)
#   plus the clicks already stored for that minute (counted no further than the highest limit
#   + 1, so a flood costs a bounded index scan) exceeds the program's limit.
# - revoked: the partner is not active.
#
# A statement does not see its own inserts, so the stored look-ups never find this batch; the
# window functions cover it, so a long spool replay is flagged as if its clicks had arrived one
# by one. Rows go in in time order, so ``seq`` follows ``clicked_at``.
_FLAGGED = """
WITH batch AS ({batch}), ranked AS (
    SELECT b.ord,
        lag(b.clicked_at) OVER (
            PARTITION BY b.link_id, b.visitor_hash ORDER BY b.clicked_at, b.ord
        ) AS previous,
        row_number() OVER (
            PARTITION BY b.link_id, b.ip_hash, {batch_minute} ORDER BY b.clicked_at, b.ord
        ) AS rank
    FROM batch AS b
    WHERE NOT :skip OR NOT EXISTS (SELECT 1 FROM clicks AS c WHERE c.id = b.id)
)
INSERT INTO clicks ({columns}, duplicate, velocity, revoked)
SELECT {b_columns},
    (r.previous IS NOT NULL AND r.previous > {hour_before}) OR EXISTS (
        SELECT 1 FROM clicks AS c
        WHERE c.link_id = b.link_id AND c.visitor_hash = b.visitor_hash
            AND c.clicked_at > {hour_before} AND c.clicked_at <= {minute_after}
    ),
    r.rank + (
        SELECT count(*) FROM (
            SELECT 1 FROM clicks AS c
            WHERE c.link_id = b.link_id AND c.ip_hash = b.ip_hash
                AND c.clicked_at >= {minute_start} AND c.clicked_at < {minute_end}
            LIMIT (
                SELECT coalesce(max(velocity_limit_per_minute), {default_limit}) + 1
                FROM programs
            )
        ) AS capped
    ) > coalesce(p.velocity_limit_per_minute, {default_limit}),
    coalesce(pt.status <> 'active', {false})
FROM batch AS b
JOIN ranked AS r ON r.ord = b.ord
LEFT JOIN programs AS p ON p.id = b.program_id
LEFT JOIN partners AS pt ON pt.id = b.partner_id
ORDER BY b.clicked_at, b.ord
"""
# Time arithmetic per database. SQLite stores times as "YYYY-MM-DD HH:MM:SS.ffffff" text:
# datetime() shifts the whole seconds and the fraction is put back, so bounds stay exact.
_TIME = {
    "postgresql": {
        "batch": "DELETE FROM click_batch RETURNING *",
        "hour_before": "b.clicked_at - interval '1 hour'",
        "minute_after": "b.clicked_at + interval '1 minute'",
        "minute_start": "date_trunc('minute', {t} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "minute_end": "(date_trunc('minute', {t} AT TIME ZONE 'UTC') + interval '1 minute')"
        " AT TIME ZONE 'UTC'",
        "false": "false",
    },
    "sqlite": {
        "batch": "SELECT * FROM click_batch",
        "hour_before": "datetime(b.clicked_at, '-1 hour') || substr(b.clicked_at, 20)",
        "minute_after": "datetime(b.clicked_at, '+1 minute') || substr(b.clicked_at, 20)",
        "minute_start": "substr({t}, 1, 16) || '\\:00'",
        "minute_end": "datetime(substr({t}, 1, 16) || '\\:00', '+1 minute')",
        "false": "0",
    },
}


def _flagged_insert(dialect: str) -> sa.TextClause:
    exprs = _TIME[dialect]
    statement = _FLAGGED.format(
        batch=exprs["batch"],
        columns=", ".join(ClickRecord._fields),
        b_columns=", ".join(f"b.{name}" for name in ClickRecord._fields),
        hour_before=exprs["hour_before"],
        minute_after=exprs["minute_after"],
        batch_minute=exprs["minute_start"].format(t="b.clicked_at"),
        minute_start=exprs["minute_start"].format(t="b.clicked_at"),
        minute_end=exprs["minute_end"].format(t="b.clicked_at"),
        default_limit=DEFAULT_VELOCITY_LIMIT,
        false=exprs["false"],
    )
    return sa.text(statement).bindparams(sa.bindparam("skip", type_=sa.Boolean()))


def _staging_ddl(dialect: sa.Dialect) -> str:
    ddl = str(sa.schema.CreateTable(_STAGING, if_not_exists=True).compile(dialect=dialect))
    # Emptied at every commit on PostgreSQL (the statement consumes it anyway).
    return ddl.strip() + (" ON COMMIT DELETE ROWS" if dialect.name == "postgresql" else "")


_INSERT_FLAGGED = {name: _flagged_insert(name) for name in _TIME}
