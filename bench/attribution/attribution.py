"""Attribution replay benchmark: 10 M clicks, 1 M customers, 1 M sales (at ``--scale 1``).

Run it through ``bench/attribution/run``. For each backend asked for:

1. creates a throwaway database (PostgreSQL: a new database; SQLite: a file in a temporary
   directory) and migrates it;
2. loads a seeded program directly (COPY on PostgreSQL, ``executemany`` in big transactions on
   SQLite): 200 partners (two revoked) with a link each, clicks spread evenly over 120 days (2 %
   flagged as bots), an identify edge binding 95 % of them to one of the customers, and sales
   (amounts 5.00 to 500.00) over the last 90 of those days, each by a random customer; then
   ``ANALYZE``. The program's window is 60 days, so a customer's clicks are partly outside the
   window, partly after the sale, partly eligible. Unless ``--no-rules``: leads (one per five
   sales) and commission rules, 20 % of sales and a flat 5.00 per lead, so every replay brings
   the commissions and their ledger entries in line too;
3. derives the initial attribution with the product itself: ``openpartner attribution replay
   --model last_click`` (printed, as "initial");
4. times ``openpartner attribution replay --model linear`` and then ``--model last_click``
   (apply, not dry run), each in a subprocess as a user would run it;
5. while each replay runs, a probe reads another program's attributions every 50 ms and
   reports the longest it waited (the replay's table locks block other programs' reads only
   around the partition swap);
6. after each replay checks with SQL that every attributed event has exactly one set of rows
   (one config version, the model asked for, no touch twice) summing exactly to its amount,
   and compares a random sample of events with a fresh derivation by the exact engine.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from openpartner.attribution.configs import Rules
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.service import attribute
from openpartner.clicks.models import Click
from openpartner.commissions.models import CommissionRuleVersion
from openpartner.commissions.rules import Rule
from openpartner.core.ids import new_id
from openpartner.db import scratch
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.db.sums import money_sum
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.ledger.models import LedgerEntry
from openpartner.ledger.service import program_balances
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 120
PARTNERS = 200
SAMPLE = 2_000  # events re-derived by the engine and compared with the stored rows


# --------------------------------------------------------------------------- databases


# --------------------------------------------------------------------------- generator


@dataclass
class Sizes:
    clicks: int
    customers: int
    events: int


def _id(prefix: str, n: int) -> str:
    # Valid, deterministic ids (26 Crockford base32 characters), sorted like the rows.
    return f"{prefix}_{n:026d}"


def seed_program(engine: Engine, rules: bool = True) -> str:
    """Program, partners (two revoked) and a link each; with ``rules``, a commission rule
    version (20 % of sales, 5.00 per lead) in force from before the first event. And another,
    empty program: the one the lock probe reads."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        program = Program(
            id=new_id("prg"),
            name="Bench Replay",
            currency="USD",
            default_destination_url="https://bench.example/",
            allowed_domains=["bench.example"],
            attribution_window_days=60,
            attribution_model="last_click",
        )
        session.add(program)
        session.add(
            Program(
                id=new_id("prg"),
                name="Bench Other",
                currency="USD",
                default_destination_url="https://other.example/",
                allowed_domains=["other.example"],
                attribution_window_days=60,
                attribution_model="last_click",
            )
        )
        session.flush()
        if rules:
            session.add(
                CommissionRuleVersion(
                    id=new_id("rul"),
                    program_id=program.id,
                    effective_from=START,
                    rules=[
                        Rule("sale", "percent", rate_bps=2000).as_dict(),
                        Rule("lead", "flat", amount=500, currency="USD").as_dict(),
                    ],
                    holding_days=30,
                    created_by="bench",
                )
            )
        links = []
        for i in range(PARTNERS):
            partner = Partner(
                id=_id("ptn", i),
                program_id=program.id,
                name=f"Partner {i}",
                email=f"partner{i}@bench.example",
                status="revoked" if i < 2 else "active",
            )
            session.add(partner)
            links.append((_id("lnk", i), partner.id))
        session.flush()
        session.execute(
            sa.insert(
                sa.table(
                    "links",
                    *map(
                        sa.column,
                        (
                            "id",
                            "key",
                            "program_id",
                            "partner_id",
                            "destination_url",
                            "archived",
                            "created_at",
                            "updated_at",
                        ),
                    ),
                )
            ),
            [
                {
                    "id": link,
                    "key": f"bench-{i}",
                    "program_id": program.id,
                    "partner_id": pid,
                    "destination_url": "https://bench.example/",
                    "archived": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for i, (link, pid) in enumerate(links)
            ],
        )
        session.commit()
        return program.id


def _h(expr: str, field: int, seed: int) -> str:
    """A seeded integer hash of ``expr`` in [0, 2**31): the same SQL on both databases, so
    both load the same rows. Multiplicative hashing, one multiplier per field."""
    multipliers = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1181783497)
    return f"((({expr}) + {seed * 7919 + field * 104729}) * {multipliers[field]} % 2147483647)"


def load(engine: Engine, program_id: str, sizes: Sizes, seed: int, leads: int = 0) -> None:
    """Clicks, identify edges and sales, generated by the database itself (``INSERT ...
    SELECT`` over a number series): 10 M rows through Python took about 15 minutes per backend
    on this machine, so the rows never leave the server."""
    pg = engine.dialect.name == "postgresql"
    span = DAYS * 86_400
    start = int(START.timestamp())

    def series(n: int) -> str:
        if pg:
            return f"generate_series(0::bigint, {n - 1}) AS s(i)"
        return (
            f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n - 1})"
            " SELECT i FROM s)"
        )

    def ident(prefix: str, expr: str) -> str:
        if pg:
            return f"'{prefix}_' || lpad(({expr})::text, 26, '0')"
        return f"printf('{prefix}_%026d', {expr})"

    def at(seconds: str) -> str:
        if pg:
            return f"to_timestamp({start} + {seconds})"
        return f"strftime('%Y-%m-%d %H:%M:%S', {start} + {seconds}, 'unixepoch') || '.000000'"

    def boolean(cond: str) -> str:
        return f"({cond})" if pg else f"(CASE WHEN {cond} THEN 1 ELSE 0 END)"

    false = "false" if pg else "0"
    partner = f"{_h('i', 0, seed)} % {PARTNERS}"
    click_at = at(f"(i * {span} / {sizes.clicks})")
    customer = f"'cus_' || ({_h('i', 2, seed)} % {sizes.customers})"
    statements = [
        f"""INSERT INTO clicks (id, link_id, partner_id, program_id, clicked_at, ip_hash,
            visitor_hash, user_agent, source, bot, duplicate, velocity, revoked)
            SELECT {ident("clk", "i")}, {ident("lnk", partner)}, {ident("ptn", partner)},
                   '{program_id}', {click_at}, {ident("ip", "i")}, {ident("vis", "i")},
                   'Mozilla/5.0 (bench)', 'router', {boolean(_h("i", 1, seed) + " % 100 < 2")},
                   {false}, {false}, {false}
            FROM {series(sizes.clicks)} ORDER BY i""",
        f"""INSERT INTO identity_edges (id, program_id, click_id, customer_id, source, status,
            created_at)
            SELECT {ident("idn", "i")}, '{program_id}', {ident("clk", "i")}, {customer},
                   'api', 'bound', {click_at}
            FROM {series(sizes.clicks)} WHERE {_h("i", 3, seed)} % 100 < 95 ORDER BY i""",
    ]
    offset, events_span = 30 * 86_400, (DAYS - 30) * 86_400
    sale_at = at(f"({offset} + i * {events_span} / {sizes.events})")
    statements.append(
        f"""INSERT INTO events (id, program_id, type, customer_id, amount, currency, occurred_at,
            received_at, external_id, request_hash, source, metadata, response)
            SELECT {ident("evt", "i")}, '{program_id}', 'sale',
                   'cus_' || ({_h("i", 4, seed)} % {sizes.customers}),
                   500 + {_h("i", 5, seed)} % 49501, 'USD', {sale_at}, {sale_at},
                   'order-' || i, {ident("req", "i")}, 'api', '{{}}', '{{}}'
            FROM {series(sizes.events)} ORDER BY i"""
    )
    if leads:
        lead_at = at(f"({offset} + i * {events_span} / {leads} + 7)")
        statements.append(
            f"""INSERT INTO events (id, program_id, type, customer_id, amount, currency,
                occurred_at, received_at, external_id, request_hash, source, metadata, response)
                SELECT {ident("evt", f"{sizes.events} + i")}, '{program_id}', 'lead',
                       'cus_' || ({_h("i", 4, seed + 1)} % {sizes.customers}), NULL, NULL,
                       {lead_at}, {lead_at}, 'lead-' || i, {ident("req", f"{sizes.events} + i")},
                       'api', '{{}}', '{{}}'
                FROM {series(leads)} ORDER BY i"""
        )
    # Secondary indexes are built once at the end rather than maintained row by row.
    indexes = [i for t in (Click.__table__, IdentityEdge.__table__) for i in t.indexes]  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if pg:
            # This session only: sort index builds in memory, and no WAL flush wait at commit
            # (a crash would lose a throwaway benchmark database, nothing else).
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        for index in indexes:
            index.drop(conn)
        for sql in statements:
            conn.exec_driver_sql(sql.replace("%", "%%") if pg else sql)
        for index in indexes:
            index.create(conn)


# --------------------------------------------------------------------------- replay


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving one database, from ``/proc`` (same
    machine): sampled every 0.2 s while the replay runs, since a backend's counters vanish
    with it. May miss up to the last 0.2 s of a backend's work; 0 where ``/proc`` is not
    there (or for SQLite, whose work is the replay process's own). Backends already there at
    the start (the benchmark's own pooled connection) count from what they had then."""

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.seen: dict[int, float] = {}
        self.before: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> BackendCpu:
        if self.database:
            self._sample()
            self.before = dict(self.seen)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.database:
            self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(cpu - self.before.get(pid, 0.0) for pid, cpu in self.seen.items())

    def _watch(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(0.2):
                return

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        marker = f" {self.database} ".encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if not cmdline.startswith(b"postgres: ") or marker not in cmdline:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[int(pid)] = (int(fields[11]) + int(fields[12])) / tick


class LockProbe:
    """Reads another program's attributions every 50 ms while a replay runs (PostgreSQL):
    the longest read is how long the replay's locks kept other programs waiting."""

    def __init__(self, engine: Engine, program_id: str | None) -> None:
        self.engine, self.program_id = engine, program_id
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> LockProbe:
        if self.program_id:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.program_id:
            self._thread.join()

    def _watch(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(0.05):
                started = time.perf_counter()
                conn.execute(
                    sa.text("SELECT count(*) FROM attributions WHERE program_id = :p"),
                    {"p": self.program_id},
                )
                conn.rollback()
                self.longest = max(self.longest, time.perf_counter() - started)


@dataclass
class Timed:
    label: str
    model: str
    seconds: float
    cpu: float
    pg_cpu: float
    events: int
    changed: int
    rows: int
    check: dict[str, int]
    blocked: float = 0.0


def run_replay(
    url: str,
    program_id: str,
    model: str,
    label: str,
    engine: Engine,
    database: str | None,
    other: str | None = None,
) -> Timed:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-" + secrets.token_hex(8)}
    cmd = [
        sys.executable, "-m", "openpartner", "attribution", "replay",
        "--program", program_id, "--model", model,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with BackendCpu(database) as backends, LockProbe(engine, other) as probe:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"replay failed:\n{out.stdout}\n{out.stderr}")
    first = out.stdout.splitlines()[0]  # "applied: N events, M changed, S s, model ..."
    parts = first.split()
    events, changed = int(parts[1]), int(parts[3])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    check = verify(engine, program_id, model)
    timed = Timed(
        label,
        model,
        seconds,
        cpu,
        backends.seconds,
        events,
        changed,
        check.pop("rows"),
        check,
        probe.longest,
    )
    print(
        f"  {label:<8} {model:<10} {seconds:8.1f} s  {events / seconds:10,.0f} events/s  "
        f"cpu {cpu:7.1f} s  postgres cpu {timed.pg_cpu:7.1f} s  changed {changed:,}  "
        f"rows {timed.rows:,}  other programs' reads waited <= {probe.longest:.2f} s  "
        f"load {os.getloadavg()[0]:.2f}  check {check}",
        flush=True,
    )
    for line in out.stdout.splitlines():
        if line.startswith("steps: "):  # seconds per database step, from the replay itself
            print(f"    {line}", flush=True)
    return timed


def verify(engine: Engine, program_id: str, model: str) -> dict[str, int]:
    """Exactly one set of rows per attributed event, summing to its amount; a sample equal to
    a fresh derivation."""
    with engine.connect() as conn:
        q = conn.execute(
            sa.text(
                """
                SELECT
                  count(*) AS events,
                  coalesce(sum(CASE WHEN a.n IS NOT NULL THEN 1 ELSE 0 END), 0) AS attributed,
                  coalesce(sum(a.n), 0) AS rows,
                  coalesce(sum(CASE WHEN a.n IS NOT NULL AND a.total <> e.amount
                                    THEN 1 ELSE 0 END), 0) AS wrong_sum,
                  coalesce(sum(CASE WHEN a.sets > 1 OR a.touches <> a.n
                                    THEN 1 ELSE 0 END), 0) AS two_sets,
                  coalesce(sum(CASE WHEN a.models > 1 OR a.model <> :model
                                    THEN 1 ELSE 0 END), 0) AS wrong_model
                FROM events e
                LEFT JOIN (
                  SELECT event_id, count(*) AS n, sum(amount) AS total,
                         count(DISTINCT config_version) AS sets,
                         count(DISTINCT touch_id) AS touches,
                         count(DISTINCT model) AS models, min(model) AS model
                  FROM attributions WHERE program_id = :p GROUP BY event_id
                ) a ON a.event_id = e.id
                WHERE e.program_id = :p
                """
            ),
            {"p": program_id, "model": model},
        ).one()
        orphans = conn.execute(
            sa.text(
                "SELECT count(*) FROM attributions a WHERE a.program_id = :p AND NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.id = a.event_id)"
            ),
            {"p": program_id},
        ).scalar_one()
        # Commissions in line with the attribution: one per credited (event, partner) under
        # the rules (20 % of a sale's share, 5.00 per lead by weight), none elsewhere.
        commissions = conn.execute(
            sa.text(
                """SELECT count(*) FROM commissions c
                WHERE c.program_id = :p AND c.status <> 'reversed' AND NOT EXISTS (
                  SELECT 1 FROM attributions a
                  WHERE a.event_id = c.event_id AND a.partner_id = c.partner_id)"""
            ),
            {"p": program_id},
        ).scalar_one()
    result = dict(q._mapping)
    result["orphan_rows"] = int(orphans)
    result["stale_commissions"] = int(commissions)
    result["sample_mismatch"] = sample_check(engine, program_id)
    return {k: int(v) for k, v in result.items()}


def sample_check(engine: Engine, program_id: str) -> int:
    """Events among a random sample whose stored rows differ from a fresh derivation."""
    with Session(engine) as session:
        total = session.scalar(sa.select(sa.func.max(Event.seq))) or 0
        rnd = random.Random(total)
        seqs = sorted({rnd.randrange(1, total + 1) for _ in range(SAMPLE)})
        events = list(session.scalars(sa.select(Event).where(Event.seq.in_(seqs))))
        derived = attribute(session, events, Rules(session))
        stored: dict[str, set[tuple[str, str, str, int]]] = {e.id: set() for e in events}
        for row in session.scalars(
            sa.select(AttributionRow).where(AttributionRow.event_id.in_([e.id for e in events]))
        ):
            stored[row.event_id].add((row.partner_id, row.touch_id, row.weight, row.amount))
        bad = 0
        for event, rows in zip(events, derived, strict=True):
            fresh = {(r["partner_id"], r["touch_id"], r["weight"], r["amount"]) for r in rows}
            bad += fresh != stored[event.id]
        return bad


# --------------------------------------------------------------------------- main


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}"


def bench_backend(backend: str, args: argparse.Namespace, sizes: Sizes) -> list[Timed]:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    name = None
    if backend == "postgresql" and args.reuse:
        name = args.reuse
        url = sa.engine.make_url(args.pg_url).set(database=name).render_as_string(False)
    elif backend == "postgresql":
        url, name = scratch.create_database(args.pg_url, "openpartner_bench_attr")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-attr-", dir=args.sqlite_dir)
        url = f"sqlite:///{tmp.name}/bench.db"
    engine = create_engine(url)
    try:
        print(f"{backend}: {name or url}", flush=True)
        if args.reuse:
            # An earlier run's database (--keep): brought to the current schema (not timed),
            # then straight to the timed replays.
            started = time.perf_counter()
            upgrade(engine)
            print(f"  migrated to the current schema in {time.perf_counter() - started:.1f} s")
            with engine.connect() as conn:
                program_id, other = conn.exec_driver_sql(
                    "SELECT id FROM programs ORDER BY name DESC"
                ).scalars()
            results = []
            for model in args.models:
                vacuum(engine, "attributions")
                results.append(run_replay(url, program_id, model, "timed", engine, name, other))
            return _checked(results)
        upgrade(engine)
        started = time.perf_counter()
        program_id = seed_program(engine, rules=args.rules)
        leads = sizes.events // 5 if args.rules else 0
        load(engine, program_id, sizes, args.seed, leads)
        with engine.connect() as conn:
            other = conn.execute(
                sa.text("SELECT id FROM programs WHERE id <> :p"), {"p": program_id}
            ).scalar_one()
        loaded = time.perf_counter() - started
        vacuum(engine)
        print(
            f"  generated and loaded {sizes.clicks:,} clicks, {sizes.customers:,} customers, "
            f"{sizes.events:,} sales, {leads:,} leads in {loaded:.1f} s (VACUUM ANALYZE "
            f"{time.perf_counter() - started - loaded:.1f} s)",
            flush=True,
        )
        results = [run_replay(url, program_id, "last_click", "initial", engine, name)]
        for model in args.models:
            vacuum(engine, "attributions")
            if args.rules:
                vacuum(engine, "commissions")
                vacuum(engine, "ledger_entries")
            results.append(run_replay(url, program_id, model, "timed", engine, name, other))
        liability(engine, program_id)
        return _checked(results)
    finally:
        engine.dispose()
        if name and not (args.keep or args.reuse):
            scratch.drop_database(args.pg_url, name)
        elif name:
            print(f"  kept database {name}")
        if tmp and not args.keep:
            tmp.cleanup()


def vacuum(engine: Engine, table: str = "") -> None:
    """What autovacuum does on a maintained PostgreSQL, before each timed replay: the previous
    replay's deleted rows cleared and the statistics fresh. (This machine's server runs with
    autovacuum off; without this every replay would scan the dead rows of all the earlier
    ones.) Not timed. SQLite reuses freed pages by itself: ``ANALYZE`` only."""
    started = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"{'VACUUM ANALYZE' if pg else 'ANALYZE'} {table}".strip())
    if table:
        print(f"  (vacuum {table}: {time.perf_counter() - started:.1f} s, not timed)", flush=True)


def liability(engine: Engine, program_id: str) -> None:
    """The program's liability read as the API reads it (running balances), and for comparison
    as it was read before issue 15 (a sum over every ledger entry), after the replays."""
    with Session(engine) as session:
        entries = session.scalar(
            sa.select(sa.func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.program_id == program_id)
        )
        started = time.perf_counter()
        balances = program_balances(session, program_id)
        running = time.perf_counter() - started
        started = time.perf_counter()
        session.execute(
            sa.select(LedgerEntry.currency, LedgerEntry.account, *money_sum(LedgerEntry.amount))
            .where(LedgerEntry.program_id == program_id)
            .group_by(LedgerEntry.currency, LedgerEntry.account)
        ).all()
        summed = time.perf_counter() - started
    owed = ", ".join(f"{b.owed:,} {b.currency}" for b in balances)
    print(
        f"  liability {owed or 'none'}: {running * 1000:.1f} ms from running balances, "
        f"{summed * 1000:.1f} ms summing the {entries:,} ledger entries",
        flush=True,
    )


def _checked(results: list[Timed]) -> list[Timed]:
    failed = [
        r
        for r in results
        if any(v for k, v in r.check.items() if k not in ("events", "attributed"))
    ]
    if failed:
        raise SystemExit(f"integrity check failed: {failed}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10 M clicks, 1 M sales")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--models", nargs="+", default=["linear", "last_click"], help="timed, in this order"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--no-rules",
        dest="rules",
        action="store_false",
        help="no commission rules and no leads (attribution alone)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--sqlite-dir", default=None, help="where the SQLite file goes")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="time the replays on a kept PostgreSQL database"
    )
    args = parser.parse_args()
    sizes = Sizes(
        clicks=int(10_000_000 * args.scale),
        customers=int(1_000_000 * args.scale),
        events=int(1_000_000 * args.scale),
    )
    print(
        f"{machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"command: bench/attribution/run {' '.join(sys.argv[1:])}",
        flush=True,
    )
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    summary = []
    for backend in backends:
        for r in bench_backend(backend, args, sizes):
            summary.append((backend, r))
    print(
        "\n| backend | rules | run | model | seconds | events/s | CPU (replay process) "
        "| CPU (PostgreSQL backend) | rows written | longest read of another program |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for backend, r in summary:
        print(
            f"| {backend} | {'yes' if args.rules else 'no'} | {r.label} | `{r.model}` "
            f"| {r.seconds:.1f} | {r.events / r.seconds:,.0f} | {r.cpu:.1f} s "
            f"| {r.pg_cpu:.1f} s | {r.rows:,} | {r.blocked:.2f} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
