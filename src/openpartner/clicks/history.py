"""The two look-ups of click history a batch needs, one round trip each however many visitors
it holds: the latest click of each (link, visitor), and the per-minute counts of each (link, IP).

The batch's keys travel as one JSON parameter, unpacked by the database (``json_to_recordset`` on
PostgreSQL, ``json_each`` on SQLite): the statement text never changes, so neither SQLAlchemy nor
the driver re-parses a statement whose size grows with the batch, which cost more than the
writes themselves.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

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

_ROWS = {
    "postgresql": "SELECT l, p, m, n FROM json_to_recordset(CAST(:rows AS json))"
    " AS k(l text, p text, m bigint, n int)",
    "sqlite": "SELECT json_extract(value, '$.l'), json_extract(value, '$.p'),"
    " json_extract(value, '$.m'), json_extract(value, '$.n') FROM json_each(:rows) WHERE true",
}
# Atomic per row, so the total before this batch is the returned total minus the batch's count.
_ADD = """
INSERT INTO click_rate_windows (link_id, ip_hash, minute, clicks) {rows}
ON CONFLICT (link_id, ip_hash, minute)
DO UPDATE SET clicks = click_rate_windows.clicks + excluded.clicks
RETURNING link_id, ip_hash, minute, clicks
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


def add_to_windows(session: Session, counts: dict[tuple[str, str, int], int]) -> dict[Any, int]:
    """Add ``counts`` to the (link_id, ip_hash, minute) windows; returns the new totals."""
    if not counts:
        return {}
    dialect = session.get_bind().dialect.name
    rows = json.dumps(
        [{"l": link, "p": ip, "m": minute, "n": n} for (link, ip, minute), n in counts.items()]
    )
    stmt = sa.text(_ADD.format(rows=_ROWS[dialect])).bindparams(sa.bindparam("rows", rows))
    return {(link, ip, int(minute)): int(n) for link, ip, minute, n in session.execute(stmt).all()}
