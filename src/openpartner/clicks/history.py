"""The two look-ups of click history a batch needs, one round trip each however many visitors
it holds: the latest click of each (link, visitor), and the clicks of each (link, IP) in a clock
minute.

The batch's keys travel as one JSON parameter, unpacked by the database (``json_to_recordset`` on
PostgreSQL, ``json_each`` on SQLite): the statement text never changes, so neither SQLAlchemy nor
the driver re-parses a statement whose size grows with the batch, which cost more than the
writes themselves.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.db.base import UTCDateTime

_KEYS = {
    "postgresql": "json_to_recordset(CAST(:keys AS json)) AS k(i int, l text, v text)",
    "sqlite": "(SELECT json_extract(value, '$.i') AS i, json_extract(value, '$.l') AS l,"
    " json_extract(value, '$.v') AS v FROM json_each(:keys)) AS k",
}
# ORDER BY ... LIMIT 1 rather than max(): one backward seek on
# ix_clicks_link_id_visitor_hash_clicked_at on both databases, however many clicks a heavy
# visitor has in the window.
_LATEST = """
SELECT k.i AS i, (
    SELECT c.clicked_at FROM clicks AS c
    WHERE c.link_id = k.l AND c.visitor_hash = k.v AND c.clicked_at >= :lo AND c.clicked_at <= :hi
    ORDER BY c.clicked_at DESC LIMIT 1
) AS latest
FROM {keys}
"""

_MINUTE_KEYS = {
    "postgresql": "json_to_recordset(CAST(:keys AS json)) AS k(i int, l text, p text, m bigint)",
    "sqlite": "(SELECT json_extract(value, '$.i') AS i, json_extract(value, '$.l') AS l,"
    " json_extract(value, '$.p') AS p, json_extract(value, '$.m') AS m"
    " FROM json_each(:keys)) AS k",
}
# The minute's bounds from its number. SQLite stores times as "YYYY-MM-DD HH:MM:SS.ffffff" text,
# which compares correctly with datetime()'s shorter "YYYY-MM-DD HH:MM:SS".
_MINUTE = {
    "postgresql": ("to_timestamp(k.m * 60)", "to_timestamp(k.m * 60 + 60)"),
    "sqlite": ("datetime(k.m * 60, 'unixepoch')", "datetime(k.m * 60 + 60, 'unixepoch')"),
}
# Counting stops at :cap (the limit + 1), so a flood costs a bounded scan of
# ix_clicks_link_id_ip_hash_clicked_at, never a count of every click in the minute.
_COUNT = """
SELECT k.i AS i, (
    SELECT count(*) FROM (
        SELECT 1 FROM clicks AS c
        WHERE c.link_id = k.l AND c.ip_hash = k.p AND c.clicked_at >= {lo} AND c.clicked_at < {hi}
        LIMIT :cap
    ) AS capped
) AS n
FROM {keys}
"""


def latest_clicks(
    session: Session, pairs: list[tuple[str, str]], lo: datetime, hi: datetime
) -> list[datetime | None]:
    """For each (link_id, visitor_hash), its latest click in ``[lo, hi]``, or None."""
    if not pairs:
        return []
    dialect = session.get_bind().dialect.name
    keys = json.dumps(
        [{"i": i, "l": link, "v": visitor} for i, (link, visitor) in enumerate(pairs)]
    )
    stmt = (
        sa.text(_LATEST.format(keys=_KEYS[dialect]))
        .bindparams(
            sa.bindparam("keys", keys),
            sa.bindparam("lo", lo, type_=UTCDateTime()),
            sa.bindparam("hi", hi, type_=UTCDateTime()),
        )
        .columns(sa.column("i", sa.Integer()), sa.column("latest", UTCDateTime()))
    )
    latest: list[datetime | None] = [None] * len(pairs)
    for i, at in session.execute(stmt).all():
        latest[i] = at
    return latest


def clicks_in_minutes(session: Session, keys: list[tuple[str, str, int]], cap: int) -> list[int]:
    """For each (link_id, ip_hash, minute since the epoch), how many clicks are stored in that
    clock minute, counting no further than ``cap``."""
    if not keys:
        return []
    dialect = session.get_bind().dialect.name
    lo, hi = _MINUTE[dialect]
    payload = json.dumps(
        [{"i": i, "l": link, "p": ip, "m": minute} for i, (link, ip, minute) in enumerate(keys)]
    )
    stmt = sa.text(_COUNT.format(keys=_MINUTE_KEYS[dialect], lo=lo, hi=hi)).bindparams(
        sa.bindparam("keys", payload), sa.bindparam("cap", cap)
    )
    counts = [0] * len(keys)
    for i, n in session.execute(stmt).all():
        counts[i] = int(n)
    return counts
