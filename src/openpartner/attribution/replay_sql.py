"""The SQL of the set-based replay (``set_replay.py``): where PostgreSQL and SQLite differ, ids
made in SQL, the eligible touches of every event in scope, and the rows they earn.

Each function returns SQL text; nothing here runs a statement but ``register_sqlite_ids``.
"""

from __future__ import annotations

import secrets
from typing import Final

from sqlalchemy.orm import Session

from openpartner.attribution.engine import CLOCK_SKEW_GRACE
from openpartner.core.ids import bulk_id_prefix

_GRACE_SECONDS: Final = int(CLOCK_SKEW_GRACE.total_seconds())
ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def deal_override() -> str:
    """SQL condition on ``e`` (an event): its deal has a model of its own, other than
    ``:model``; such events keep the per-event path."""
    return (
        "EXISTS (SELECT 1 FROM deals d WHERE d.id = e.deal_id"
        " AND d.model IS NOT NULL AND d.model <> :model)"
    )


class Dialect:
    """The few places where PostgreSQL and SQLite spell the same thing differently."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg
        # Python compares ids by code point; PostgreSQL's default collation may not.
        self.bytewise = ' COLLATE "C"' if pg else ""
        # ``:params`` (JSON text) as the stored ``params`` column's type.
        self.json_params = "CAST(:params AS jsonb)" if pg else ":params"

    def unindexed(self, column: str) -> str:
        """``column``, in a form SQLite will not pick an index for: on ``x IS [NOT] NULL`` it
        would otherwise scan the wrong index of ``identity_edges`` once per event."""
        return column if self.pg else f"+{column}"

    def shifted(self, column: str, seconds: str) -> str:
        """``column`` plus ``seconds`` (an SQL integer expression), exact to the microsecond."""
        if self.pg:
            return f"({column} + make_interval(secs => {seconds}))"
        # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': shift the whole seconds, keep the fraction.
        return (
            f"(datetime(substr({column}, 1, 19), ({seconds}) || ' seconds')"
            f" || substr({column}, 20))"
        )

    def new_id(self, prefix: str, counter: str) -> str:
        """An SQL expression making one id per row in ``core.ids`` format, increasing with
        ``counter`` (0 to 2**25 - 1, distinct per row): the time part shared by the statement
        (a millisecond after every id this process made), then the counter in 5 characters (25
        bits) and 11 random characters (55 bits) drawn for that row alone, so no id is another
        plus one and none can be guessed from its neighbours. Increasing ids go in at the right
        edge of the unique index on ids instead of at random pages all over it, which is most
        of the cost of writing millions of rows. On PostgreSQL the random characters are drawn
        once per statement (``random_characters``): a ``gen_random_uuid()`` per row cost about
        2 µs a row here."""
        if not self.pg:
            return f"'{bulk_id_prefix(prefix)}' || op_id_tail({counter})"
        # Slices of bytea parameters (O(1); text slices in a UTF-8 database are not): two
        # characters of the counter from ``:id_pairs`` (the 1,024 pairs), the last from
        # ``:id_alphabet``, then the row's 11 random characters.
        c = f"({counter})::int"
        parts = [
            f"substring(:id_pairs from 2 * (({c} >> 15) & 1023) + 1 for 2)",
            f"substring(:id_pairs from 2 * (({c} >> 5) & 1023) + 1 for 2)",
            f"substring(:id_alphabet from ({c} & 31) + 1 for 1)",
            f"substring(:id_random from {RANDOM_CHARACTERS} * {c} + 1 for {RANDOM_CHARACTERS})",
        ]
        return f"'{bulk_id_prefix(prefix)}' || encode({' || '.join(parts)}, 'escape')"


def random_characters(rows: int) -> bytes:
    """``RANDOM_CHARACTERS`` random base-32 characters per row, as bytes: each random byte
    mapped to a character (256 is a multiple of 32, so every character is equally likely)."""
    return secrets.token_bytes(RANDOM_CHARACTERS * rows).translate(_TOALPHABET)


COUNTER_BITS: Final = 25
RANDOM_CHARACTERS: Final = 11  # 55 bits: with the counter, the 80 bits after the time part
ID_PAIRS: Final = "".join(a + b for a in ALPHABET for b in ALPHABET).encode()
_PAIR_TEXT: Final = ID_PAIRS.decode()
_TOALPHABET: Final = bytes(ord(ALPHABET[b % 32]) for b in range(256))


def eligible_touches_sql(d: Dialect, scope: str) -> str:
    """Every eligible touch of the events in ``scope`` (an SQL condition on ``e``)."""
    not_revoked = "coalesce(p.status, '') <> 'revoked'"
    # The flags are NOT NULL: plain columns, so the planner's statistics apply to them.
    unflagged = "NOT (c.bot OR c.duplicate OR c.velocity OR c.revoked)"
    earliest = d.shifted("e.occurred_at", "-86400 * :window")
    latest = d.shifted("e.occurred_at", str(_GRACE_SECONDS))
    return f"""
    SELECT event_id{d.bytewise} AS event_id, event_seq, currency, amount,
           partner_id{d.bytewise} AS partner_id, touch_id{d.bytewise} AS touch_id, kind, at, seq
    FROM (
    WITH ev AS {"NOT MATERIALIZED " if d.pg else ""}(
      -- PostgreSQL: inlined where used, so that the joins over edges and clicks can run in
      -- parallel workers (a materialised CTE is scanned by the leader alone)
      SELECT e.id, e.seq, e.currency, e.customer_id, e.deal_id, e.promotion_code, e.occurred_at,
             coalesce(e.amount, 0) AS amount, {earliest} AS earliest, {latest} AS latest
      FROM events e WHERE {scope}
    ),
    carried AS (
      SELECT DISTINCT ev.id AS event_id, ev.seq AS event_seq, ev.currency, ev.amount,
             ev.earliest, ev.latest, carrier.click_id
      FROM ev
      JOIN identity_edges visitor
        ON visitor.program_id = :program AND visitor.customer_id = ev.customer_id
       AND visitor.status = 'bound' AND {d.unindexed("visitor.visitor_id")} IS NOT NULL
      JOIN identity_edges carrier
        ON carrier.program_id = :program AND carrier.visitor_id = visitor.visitor_id
       AND {d.unindexed("carrier.customer_id")} IS NULL
       AND {d.unindexed("carrier.click_id")} IS NOT NULL
      WHERE ev.customer_id <> ''
        -- counted below when bound to the customer directly
        AND NOT EXISTS (
          SELECT 1 FROM identity_edges own
          WHERE own.program_id = :program AND own.click_id = carrier.click_id
            AND own.customer_id = ev.customer_id AND own.status = 'bound')
        -- first bind wins: a click another customer bound first is theirs
        AND coalesce((
          SELECT binder.customer_id FROM identity_edges binder
          WHERE binder.program_id = :program AND binder.click_id = carrier.click_id
            AND binder.customer_id IS NOT NULL AND binder.status = 'bound'
          ORDER BY binder.seq LIMIT 1), ev.customer_id) = ev.customer_id
    )
    -- Clicks bound to the customer directly: written as one join of edges, clicks and events
    -- (not events, then edges, then clicks) so that the planner may join edges and clicks
    -- first, in click id order, and probe a hash of the events, instead of hashing millions
    -- of edges and clicks.
    SELECT ev.id AS event_id, ev.seq AS event_seq, ev.currency, ev.amount, c.partner_id,
           c.id AS touch_id, 'click' AS kind, c.clicked_at AS at, c.seq
    FROM identity_edges ed
    JOIN clicks c ON c.id = ed.click_id
    JOIN ev ON ev.customer_id = ed.customer_id
    LEFT JOIN partners p ON p.id = c.partner_id
    WHERE ed.program_id = :program AND ed.status = 'bound'
      AND {d.unindexed("ed.click_id")} IS NOT NULL AND {d.unindexed("ed.customer_id")} IS NOT NULL
      AND ev.customer_id <> ''
      AND c.clicked_at >= ev.earliest AND c.clicked_at <= ev.latest
      AND {unflagged} AND {not_revoked}
    UNION ALL
    SELECT f.event_id, f.event_seq, f.currency, f.amount, c.partner_id, c.id, 'click',
           c.clicked_at, c.seq
    FROM carried f
    JOIN clicks c ON c.id = f.click_id
    LEFT JOIN partners p ON p.id = c.partner_id
    WHERE c.clicked_at >= f.earliest AND c.clicked_at <= f.latest
      AND {unflagged} AND {not_revoked}
    UNION ALL
    SELECT ev.id, ev.seq, ev.currency, ev.amount, t.partner_id, t.id, 'touchpoint',
           t.occurred_at, t.seq
    FROM ev
    JOIN touchpoints t ON t.program_id = :program AND t.customer_id = ev.customer_id
    LEFT JOIN partners p ON p.id = t.partner_id
    WHERE ev.customer_id <> '' AND t.occurred_at >= ev.earliest AND t.occurred_at <= ev.latest
      AND {not_revoked}
    UNION ALL
    SELECT ev.id, ev.seq, ev.currency, ev.amount, t.partner_id, t.id, 'touchpoint',
           t.occurred_at, t.seq
    FROM ev
    JOIN touchpoints t ON t.program_id = :program AND t.deal_id = ev.deal_id
    LEFT JOIN partners p ON p.id = t.partner_id
    WHERE ev.deal_id <> '' AND t.occurred_at >= ev.earliest AND t.occurred_at <= ev.latest
      AND NOT coalesce(ev.customer_id <> '' AND t.customer_id = ev.customer_id, false)
      AND {not_revoked}
    UNION ALL
    SELECT ev.id, ev.seq, ev.currency, ev.amount, pc.partner_id, pc.id, 'coupon',
           ev.occurred_at, 0
    FROM ev
    JOIN promotion_codes pc
      ON pc.program_id = :program AND pc.code = upper(ev.promotion_code) AND pc.active
    LEFT JOIN partners p ON p.id = pc.partner_id
    WHERE ev.promotion_code <> '' AND {not_revoked}
    ) touches
    """


def rows_select(d: Dialect, model: str, touches: str = "replay_touches") -> str:
    """The SELECT making ``replay_rows`` from ``touches`` (a table, or a subquery in
    parentheses, of ``replay_touches``' columns): (event, partner, touch, kind, weight, amount;
    ``credit``, the partner's amount in the event, on one row per partner; and ``ord``, the
    order to write in)."""
    order = "at, seq, touch_id"
    if model in ("last_click", "first_click"):
        direction = " DESC" if model == "last_click" else ""
        desc_order = ", ".join(f"{c}{direction}" for c in order.split(", "))
        # PostgreSQL: DISTINCT ON picks the touch in one sort, whose order (by event) the
        # numbering then reuses; SQLite has no DISTINCT ON: a ranking window.
        picked = (
            f"""SELECT DISTINCT ON (event_seq) t.* FROM {touches} t
                ORDER BY event_seq, {desc_order}"""
            if d.pg
            else f"""SELECT * FROM (
                  SELECT t.*, row_number() OVER (PARTITION BY event_seq ORDER BY {desc_order})
                         AS pick
                  FROM {touches} t
                ) ranked WHERE pick = 1"""
        )
        return f"""SELECT event_id, event_seq, currency, partner_id, touch_id, kind,
                   '1/1' AS weight, amount, amount AS credit,
                   row_number() OVER (ORDER BY event_seq) AS ord
            FROM ({picked}) picked"""
    # linear: a partner with k of the n touches weighs k/n; partner_equal: each of the p
    # partners weighs 1/p. Over one denominator: numerator num, denominator den.
    num, den = ("k", "n") if model == "linear" else ("1", "partners")
    touch_weight = "'1/' || n" if model == "linear" else "'1/' || (partners * k)"
    # One statement of window functions over the touches, each level one step of split():
    # no grouped table joined back, and every sort after the first keeps the event order, so
    # PostgreSQL sorts within events only (an incremental sort). A partner's first touch
    # stands for the partner within its event; its row carries the partner's exact part once.
    partners = (
        ", dense_rank() OVER (PARTITION BY event_seq ORDER BY partner_id) AS partner_rank"
        if model == "partner_equal"
        else ""
    )
    counted = (
        ", max(partner_rank) OVER (PARTITION BY event_seq) AS partners"
        if model == "partner_equal"
        else ""
    )
    return f"""SELECT event_id, event_seq, currency, partner_id, touch_id, kind,
               {touch_weight} AS weight,
               (CASE WHEN amount < 0 THEN -1 ELSE 1 END) * (
                 share / k
                 -- the units left within a partner go to its earlier touches
                 + CASE WHEN row_number() OVER (PARTITION BY event_seq, first_pos ORDER BY pos)
                             <= share % k THEN 1 ELSE 0 END) AS amount,
               -- the partner's whole amount, on its first touch's row only (the comparison)
               CASE WHEN pos = first_pos
                    THEN (CASE WHEN amount < 0 THEN -1 ELSE 1 END) * share END AS credit,
               -- the order the per-event path writes rows in: by event, then by credit
               -- (first touch), then touch (explanations list an event's rows by seq)
               row_number() OVER (ORDER BY event_seq, first_pos, pos) AS ord
        FROM (
          -- each partner's share: its part, plus one unit for the largest remainders
          SELECT r.*, part + CASE WHEN rank_ <= leftover THEN 1 ELSE 0 END AS share
          FROM (
            SELECT f.*,
                   magnitude - sum(CASE WHEN pos = first_pos THEN part ELSE 0 END) OVER w
                     AS leftover,
                   dense_rank() OVER w AS rank_
            FROM (
              -- floor and remainder of magnitude * num / den, without overflowing 64 bits
              SELECT c.*,
                     (magnitude / {den}) * {num} + ((magnitude % {den}) * {num}) / {den} AS part,
                     ((magnitude % {den}) * {num}) % {den} AS remainder
              FROM (
                SELECT p.*, abs(amount) AS magnitude{counted}
                FROM (
                  SELECT t.*, count(*) OVER (PARTITION BY event_seq, partner_id) AS k,
                         min(pos) OVER (PARTITION BY event_seq, partner_id) AS first_pos{partners}
                  FROM (
                    SELECT t.*, row_number() OVER w AS pos, count(*) OVER w AS n
                    FROM {touches} t
                    WINDOW w AS (PARTITION BY event_seq ORDER BY {order}
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
                  ) t
                ) p
              ) c
            ) f
            -- one window for both (a rank ignores the frame): one sort, one pass
            WINDOW w AS (PARTITION BY event_seq ORDER BY remainder DESC, first_pos
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
          ) r
        ) shared"""


def id_tail(counter: int) -> str:
    """The 16 characters after the time part of a row's id (``Dialect.new_id``): ``counter``
    in 5 characters, then 11 random ones."""
    high, low = (counter >> 15) & 1023, (counter >> 5) & 1023
    return (
        _PAIR_TEXT[2 * high : 2 * high + 2]
        + _PAIR_TEXT[2 * low : 2 * low + 2]
        + ALPHABET[counter & 31]
        + random_characters(1).decode()
    )


def register_sqlite_ids(session: Session) -> None:
    """``op_id_tail(counter)`` (``id_tail``) on this SQLite connection."""
    connection = session.connection()
    # Once per connection: SQLite refuses to redefine a function while statements are open.
    if not connection.info.get("op_id_tail"):
        raw = connection.connection.dbapi_connection
        raw.create_function("op_id_tail", 1, id_tail)  # type: ignore[union-attr]
        connection.info["op_id_tail"] = True
