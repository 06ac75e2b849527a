"""Set-based replay for the models whose weights need no per-touch logic.

Under ``last_click``, ``first_click``, ``linear`` and ``partner_equal`` an event's rows depend
only on how many eligible touches it has, their order and their partners, so the database can
derive a whole program's history in a few statements instead of Python touching every row:

1. ``replay_touches``: the eligible touches of every event in scope, gathered exactly as
   ``touches.touches_for_events`` does (clicks bound to the customer directly or carried by a
   visitor bound to the customer, first bind wins; touchpoints on the customer or deal; the
   synthetic coupon touch at the moment of the sale) and filtered exactly as the engine does
   (window and 5-minute grace, both inclusive; flagged; revoked), each with its position in the
   engine's order: time, then ingest sequence, then id (byte order, as Python compares).
2. ``replay_rows``: the rows ``rows.rows_from`` would write. Weights are ``1/1`` (last, first),
   ``1/n`` (linear) or ``1/(p*k)`` (partner_equal: p partners, k touches of this partner). Money
   is ``core.money.split`` done with window functions: each partner gets the floor of its exact
   share, the units left over go to the larger remainder, then the earlier first touch; within a
   partner, whose touches weigh the same, to its earlier touches. Signs as ``split``: the
   magnitude is split and the sign put back.
3. The per-partner report and the changed events come from comparing ``replay_rows`` with the
   stored rows in SQL. Only events whose stored rows differ (touch, partner, weight, amount,
   model, parameters or engine version) are deleted and written again, so replaying twice
   touches nothing.

The statements' SQL is built in ``replay_sql.py``. How the rows are replaced, and when two
more backends share the work, is told in ``partitions.py`` and ``two_backends.py``.

The exact engine stays the definition: ``tests/test_attribution_set_replay.py`` compares this
path with it on random histories. Events whose deal has a model of its own are left to the
caller (they are attributed under the deal's model).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution import partitions
from openpartner.attribution.engine import ENGINE_VERSION
from openpartner.attribution.models import ModelSpec
from openpartner.attribution.replay_sql import (
    ALPHABET,
    COUNTER_BITS,
    ID_PAIRS,
    Dialect,
    deal_override,
    eligible_touches_sql,
    random_characters,
    register_sqlite_ids,
    rows_select,
)
from openpartner.attribution.two_backends import TwoBackends
from openpartner.core.time import utc_now
from openpartner.db.base import UTCDateTime
from openpartner.db.bulk import is_postgresql
from openpartner.db.sums import combine, money_sum_sql

SET_BASED_MODELS: Final = frozenset({"last_click", "first_click", "linear", "partner_equal"})
TEMPORARY_TABLES: Final = (
    "replay_touches",
    "replay_rows",
    "replay_replayed",
    "replay_changed",
    "replay_verdict",
    "replay_shared",
    "replay_rewrite",
)
WORK_MEM: Final = "1GB"
"""Per sort or hash, for this transaction only: the largest hash (every click of the program)
then stays in memory instead of spilling to temporary files."""


def covers(spec: ModelSpec) -> bool:
    return spec.name in SET_BASED_MODELS


def replay_set_based(
    session: Session,
    *,
    program_id: str,
    spec: ModelSpec,
    window_days: int,
    since: datetime | None,
    config_id: str | None,
    dry_run: bool,
    add_diff: Callable[[str, str | None, int, int], None],
    want_ids: bool = True,
    steps: Steps | None = None,
    before_write: Callable[[], None] | None = None,
    on_rewrite: Callable[[], None] | None = None,
) -> tuple[int, int, list[str]]:
    """Replay every event of the program in scope (not a refund, from ``since`` on, not under a
    deal's own model) under ``spec``. Reports each (partner, currency) total through
    ``add_diff(partner, currency, current, replayed)`` and returns (events, events whose
    credit changed (:func:`_shares_moved`), the ids of those whose per-partner amounts changed
    if ``want_ids``). Writes nothing when ``dry_run``.
    ``steps`` collects the seconds each statement took; ``before_write`` runs just before the
    first write (the replay's derivation lock: late_changes.py). ``on_rewrite`` runs once
    ``replay_rewrite`` holds every event whose rows change (their new rows in ``replay_rows``),
    after ``before_write`` and before ``attributions`` is written or locked: the commissions
    are brought in line there, so the replay's table locks are held only for the swap."""
    d = Dialect(is_postgresql(session))
    scope = (
        "e.program_id = :program AND e.type <> 'refund'"
        + (" AND e.occurred_at >= :since" if since is not None else "")
        + f" AND NOT ({deal_override()})"
    )
    params: dict[str, Any] = {
        "program": program_id,
        "window": window_days,
        "model": spec.name,
        "params": json.dumps(spec.params_for_storage()),
        "engine": ENGINE_VERSION,
    }
    if since is not None:
        # SQLite compares the stored text: bind the stored form.
        params["since"] = since if d.pg else since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    run = _runner(session, params, steps)
    if d.pg:
        # Sorting and hashing a whole history: in memory rather than in temporary files.
        run(f"SET LOCAL work_mem = '{WORK_MEM}'")
        if not run("SELECT pg_my_temp_schema() <> 0").scalar_one():
            # Only before the session's first temporary table (PostgreSQL refuses it after,
            # even when the transaction that made it rolled back: then the check above says
            # none and the setting is refused; the replay runs with the default buffers).
            try:
                with session.begin_nested():
                    run(f"SET LOCAL temp_buffers = '{WORK_MEM}'")
            except sa.exc.DataError:
                pass
    else:
        register_sqlite_ids(session)
    _drop_temporaries(run, d)
    params.update(id_pairs=ID_PAIRS, id_alphabet=ALPHABET.encode())
    events = int(run(f"SELECT count(*) FROM events e WHERE {scope}").scalar_one())
    pending: Callable[[], str] | None = None
    helpers = TwoBackends.for_replay(session, program_id, events, WORK_MEM) if d.pg else None
    if helpers is not None:  # a large replay: two more backends derive the rows
        helpers.sweep(session)
        started = time.perf_counter()
        helpers.derive_rows(
            eligible_touches_sql(d, scope),
            lambda touches: rows_select(d, spec.name, touches),
            params,
        )
        if steps is not None:
            steps.add("touches, then rows (2 backends)", time.perf_counter() - started)
        run(helpers.rows_view(session), name="create replay_rows (view)")
        if not dry_run and _rewrites_everything(run, d, scope, events):
            # Known before comparing: the helpers write the new partition meanwhile.
            rows = {**params, "config": config_id, "every_event": True}
            pending = helpers.start_partition(
                lambda connection, table, half: _insert_rows(
                    connection.execute, d, table, half, rows, None
                ),
                steps.add if steps else None,
            )
    else:
        run("CREATE TEMPORARY TABLE replay_touches AS " + eligible_touches_sql(d, scope))
        run("ANALYZE replay_touches")  # temporary tables are never analysed automatically
        run("CREATE TEMPORARY TABLE replay_rows AS " + rows_select(d, spec.name))
        run("ANALYZE replay_rows")
    _compare(run, d, scope)
    for row in run(
        f"""SELECT partner_id, currency, {money_sum_sql("coalesce(current, 0)")},
                  {money_sum_sql("coalesce(replayed, 0)")}
           FROM replay_changed GROUP BY partner_id, currency"""
    ):
        add_diff(row[0], row[1], combine(row[2], row[3]), combine(row[4], row[5]))
    changed = int(run("SELECT count(*) FROM replay_verdict WHERE moved = 1").scalar_one())
    changed += _shares_moved(run)
    changed_ids = (
        list(run("SELECT event_id FROM replay_verdict WHERE moved = 1").scalars())
        if want_ids
        else []
    )
    if not dry_run or on_rewrite is not None:
        _rewrite_set(run, d, params, config_id)
    if not dry_run and before_write is not None:
        before_write()
    if on_rewrite is not None:
        started = time.perf_counter()
        on_rewrite()
        if steps is not None:
            steps.add("sync commissions", time.perf_counter() - started)
    if not dry_run:
        _write(session, d, params, steps, helpers, pending)
    _drop_temporaries(run, d)
    for table in helpers.scratch_tables() if helpers else []:
        run(f"DROP TABLE {table}", name="drop scratch tables")
    return events, changed, changed_ids


def _drop_temporaries(run: Callable[..., Any], d: Dialect) -> None:
    """Drop this session's replay tables (``replay_rows`` is a view with two backends)."""
    views: set[str] = set()
    if d.pg:
        views.update(
            run(
                """SELECT relname FROM pg_class
                WHERE relnamespace = pg_my_temp_schema() AND relkind = 'v'"""
            ).scalars()
        )
    for table in TEMPORARY_TABLES:
        run(f"DROP {'VIEW' if table in views else 'TABLE'} IF EXISTS {table}")


def _compare(run: Callable[[str], Any], d: Dialect, scope: str) -> None:
    """``replay_changed``: per (event, partner), the stored amount and the replayed one, and
    whether every stored row is under the rules replayed (model, parameters, engine version).
    ``replay_verdict``: per event, whether its per-partner amounts moved, and that flag."""
    replayed = """(SELECT event_id, partner_id, currency, credit AS amount
        FROM replay_rows WHERE credit IS NOT NULL)"""
    if not d.pg:
        # SQLite runs the full join below as a loop over the stored amounts, probing an index
        # of the replayed ones; PostgreSQL hashes them straight from replay_rows. The table
        # itself, not a subquery of it: SQLite would materialise that without the index and
        # scan all of it for every stored amount.
        run(f"CREATE TEMPORARY TABLE replay_replayed AS {replayed[1:-1]}")
        run("CREATE INDEX replay_replayed_key ON replay_replayed (event_id, partner_id)")
        replayed = "replay_replayed"
    run(
        f"""CREATE TEMPORARY TABLE replay_changed AS
        SELECT coalesce(o.event_id, r.event_id) AS event_id,
               coalesce(o.partner_id, r.partner_id) AS partner_id,
               coalesce(o.currency, r.currency) AS currency,
               o.amount AS current, r.amount AS replayed, o.same_rules
        FROM (SELECT a.event_id, a.partner_id, e.currency, a.credit AS amount,
                     -- an event's rows are written together, under one set of rules
                     CASE WHEN a.model = :model AND a.engine_version = :engine
                               AND a.params = {d.json_params} THEN 1 ELSE 0 END AS same_rules
              -- one row per partner and event: the one carrying the partner's amount.
              -- Events in scope joined here, not from a temporary table: that would keep
              -- PostgreSQL's parallel workers out of this scan.
              FROM attributions a JOIN events e ON e.id = a.event_id
              WHERE a.program_id = :program AND a.credit IS NOT NULL AND {scope}) o
        FULL JOIN {replayed} r
          ON r.event_id = o.event_id AND r.partner_id = o.partner_id"""
    )
    run(
        """CREATE TEMPORARY TABLE replay_verdict AS
        SELECT event_id,
               max(CASE WHEN current IS NULL OR replayed IS NULL OR current <> replayed
                        THEN 1 ELSE 0 END) AS moved,
               min(coalesce(same_rules, 1)) AS same_rules
        FROM replay_changed GROUP BY event_id"""
    )


def _shares_moved(run: Callable[[str], Any]) -> int:
    """Events whose per-partner amounts stay but whose split does not: an event without an
    amount (a lead), or one whose units round alike. Only an event with several partners can
    (one partner always has weight 1); for it, each partner's touch weights are compared as a
    multiset. Under these models a partner's touches weigh the same, so equal multisets mean
    equal weights; two different ones mean a change of the partner's share or of the touches
    credited. Reported only: the events to rewrite are chosen by ``_write``."""
    run(
        """CREATE TEMPORARY TABLE replay_shared AS
        SELECT c.event_id FROM replay_changed c JOIN replay_verdict v ON v.event_id = c.event_id
        WHERE v.moved = 0 GROUP BY c.event_id HAVING count(*) > 1"""
    )
    return int(
        run(
            """SELECT count(DISTINCT coalesce(o.event_id, r.event_id))
            FROM (SELECT a.event_id, a.partner_id, a.weight, count(*) AS n
                  FROM attributions a JOIN replay_shared s ON s.event_id = a.event_id
                  WHERE a.program_id = :program
                  GROUP BY a.event_id, a.partner_id, a.weight) o
            FULL JOIN (SELECT x.event_id, x.partner_id, x.weight, count(*) AS n
                       FROM replay_rows x JOIN replay_shared s ON s.event_id = x.event_id
                       GROUP BY x.event_id, x.partner_id, x.weight) r
              ON r.event_id = o.event_id AND r.partner_id = o.partner_id
             AND r.weight = o.weight AND r.n = o.n
            WHERE o.event_id IS NULL OR r.event_id IS NULL"""
        ).scalar_one()
    )


def _rewrite_set(
    run: Callable[..., Any], d: Dialect, params: dict[str, Any], config_id: str | None
) -> None:
    """``replay_rewrite``: the events whose stored rows differ from ``replay_rows`` in any way
    (amounts, weights, touches, rules), so the events whose commissions may change too: a lead
    has no amount to move, only weights."""
    params["config"] = config_id
    # Rewritten: the events whose per-partner amounts moved, and those with a row under other
    # rules (after a change of model, every event: nothing more to compare).
    run(
        """CREATE TEMPORARY TABLE replay_rewrite AS
        SELECT event_id FROM replay_verdict WHERE moved = 1 OR same_rules = 0"""
    )
    compared = run("SELECT count(*) FROM replay_verdict WHERE moved = 0 AND same_rules = 1")
    # Otherwise every event with new rows is rewritten: no filter on the rows to insert.
    params["every_event"] = not compared.scalar_one()
    if not params["every_event"]:
        # The rest have the same amounts under the same rules, but may differ touch by touch
        # (another click of the same partner): one hash full join of their stored rows with the
        # new ones, linear whatever the planner estimates (an anti-join here ran in quadratic
        # time on some plans).
        if not d.pg:  # SQLite runs a full join as a loop over the left side, probing the right
            run("CREATE INDEX replay_rows_touch ON replay_rows (event_id, touch_id)")
        run(
            """INSERT INTO replay_rewrite
            SELECT DISTINCT coalesce(o.event_id, r.event_id)
            FROM (SELECT a.* FROM attributions a JOIN replay_verdict v ON v.event_id = a.event_id
                  WHERE v.moved = 0 AND v.same_rules = 1) o
            FULL JOIN (SELECT x.* FROM replay_rows x JOIN replay_verdict v
                         ON v.event_id = x.event_id
                       WHERE v.moved = 0 AND v.same_rules = 1) r
              ON r.event_id = o.event_id AND r.touch_id = o.touch_id
            WHERE o.event_id IS NULL OR r.event_id IS NULL
               OR o.partner_id <> r.partner_id OR o.touch_kind <> r.kind
               OR o.weight <> r.weight OR o.amount <> r.amount"""
        )
    run("ANALYZE replay_rewrite")


def _write(
    session: Session,
    d: Dialect,
    params: dict[str, Any],
    steps: Steps | None,
    helpers: TwoBackends | None,
    pending: Callable[[], str] | None,
) -> None:
    """Replace the stored rows of the events in ``replay_rewrite``; with ``pending`` (the
    helpers already writing the program's new partition), swap that in."""
    run = _runner(session, params, steps)
    if pending is not None or _rebuilds(session, run):
        # Most of the program changes: its rows go into a table of their own, swapped in whole.
        built = pending() if pending is not None else None
        if built is None and helpers is not None and params["every_event"]:
            # Every new row goes in: each helper writes its half, at once, then indexes it.
            built = helpers.build_partition(
                lambda connection, table, half: _insert_rows(
                    connection.execute, d, table, half, params, None
                ),
                steps.add if steps else None,
            )

        def fill(table: str) -> None:
            run(
                f"""INSERT INTO "{table}" SELECT a.* FROM attributions a
                WHERE a.program_id = :program
                  AND NOT EXISTS (SELECT 1 FROM replay_rewrite w WHERE w.event_id = a.event_id)""",
                name="insert kept rows",
            )
            if built is None:
                _insert_rows(session.execute, d, table, "replay_rows", params, steps)

        timer = steps.add if steps else None
        partitions.rebuild(session, params["program"], fill, timer, table=built)
    else:
        run("DELETE FROM attributions WHERE event_id IN (SELECT event_id FROM replay_rewrite)")
        _insert_rows(session.execute, d, "attributions", "replay_rows", params, steps)


REBUILD_MIN_EVENTS = 10_000
REBUILD_SHARE = 0.2
"""A replay rebuilds the program's partition (PostgreSQL) when it rewrites at least this many
events and this share of the program's events: below that, deleting and inserting the rows
that changed costs less than writing every row of the program again."""


def _rewrites_everything(run: Callable[..., Any], d: Dialect, scope: str, events: int) -> bool:
    """Whether, before comparing, this replay is known to rewrite every event in scope by
    rebuilding the program's partition: no stored row in scope is under the rules replayed (so
    every event with rows is rewritten), and the events are enough for a rebuild. Called with
    the helpers only, so ``attributions`` is partitioned."""
    return (
        _worth_rebuilding(run, events)
        and not run(
            f"""SELECT EXISTS (
          SELECT 1 FROM attributions a JOIN events e ON e.id = a.event_id
          WHERE a.program_id = :program AND a.credit IS NOT NULL AND {scope}
            AND a.model = :model AND a.engine_version = :engine
            AND a.params = {d.json_params})""",
            name="select rows under these rules",
        ).scalar_one()
    )


def _rebuilds(session: Session, run: Callable[..., Any]) -> bool:
    """Whether the events in ``replay_rewrite`` are worth a rebuild, where there are partitions."""
    rewrite = int(run("SELECT count(*) FROM replay_rewrite").scalar_one())
    return _worth_rebuilding(run, rewrite) and partitions.is_partitioned(session)


def _worth_rebuilding(run: Callable[..., Any], rewritten: int) -> bool:
    """``REBUILD_MIN_EVENTS`` and ``REBUILD_SHARE`` of the program's events, or more."""
    if rewritten < REBUILD_MIN_EVENTS:
        return False
    total = int(run("SELECT count(*) FROM events WHERE program_id = :program").scalar_one())
    return rewritten >= REBUILD_SHARE * total


def _insert_rows(
    execute: Callable[..., Any],
    d: Dialect,
    table: str,
    source: str,
    params: dict[str, Any],
    steps: Steps | None,
) -> None:
    """The new rows of the events in ``replay_rewrite`` (of every event, when
    ``params["every_event"]``), from ``source`` (``replay_rows`` or one half of it), into
    ``table``, through ``execute`` (a session's or a connection's)."""
    last = int(execute(sa.text(f"SELECT coalesce(max(ord), 0) FROM {source}")).scalar_one())
    rewritten = (
        "" if params["every_event"] else "AND x.event_id IN (SELECT event_id FROM replay_rewrite)"
    )
    batch = 1 << COUNTER_BITS  # ids count rows up to this within one time part
    for after in range(0, last, batch):
        now = sa.bindparam("now", utc_now(), type_=UTCDateTime())
        started = time.perf_counter()
        randoms = random_characters(min(batch, last - after)) if d.pg else b""
        execute(
            sa.text(
                f"""INSERT INTO "{table}" (id, program_id, event_id, partner_id, touch_id,
                    touch_kind, weight, amount, credit, currency, model, params, config_version,
                    engine_version, created_at)
                SELECT {d.new_id("att", "r.ord - :after - 1")}, :program, r.event_id,
                       r.partner_id, r.touch_id, r.kind, r.weight, r.amount, r.credit, r.currency,
                       :model,
                       {d.json_params}, :config, :engine, :now
                FROM (SELECT x.* FROM {source} x
                      WHERE x.ord > :after AND x.ord <= :after + :batch
                        {rewritten}
                      -- sorted before the ids are made: SQLite makes them one call per row
                      ORDER BY x.ord) r"""
            ).bindparams(now),
            {**params, "after": after, "batch": batch, "id_random": randoms},
        )
        if steps is not None:
            steps.add("insert attributions", time.perf_counter() - started)


def _runner(
    session: Session, params: dict[str, Any], steps: Steps | None = None
) -> Callable[..., sa.Result[*tuple[Any, ...]]]:
    """``run(sql, name=None)`` runs one statement with ``params``; with ``steps``, adds its wall
    time under ``name`` or the statement's own (``_step_name``)."""

    def run(sql: str, name: str | None = None) -> sa.Result[*tuple[Any, ...]]:
        started = time.perf_counter()
        result = session.execute(sa.text(sql), params)
        if steps is not None:
            steps.add(name or _step_name(sql), time.perf_counter() - started)
        return result

    return run


class Steps(dict[str, float]):
    """Seconds per replay step, in the order first run: where a replay's time went."""

    def add(self, name: str, seconds: float) -> None:
        self[name] = self.get(name, 0.0) + seconds


def _step_name(sql: str) -> str:
    """A statement's name in the step timings: the table it makes or writes, or its verb."""
    words = [w for w in sql.split() if w not in ("IF", "EXISTS")]
    for verb in ("TABLE", "INTO", "FROM", "INDEX"):
        if verb in words[:4]:
            return f"{words[0].lower()} {words[words.index(verb) + 1]}"
    return words[0].lower()
