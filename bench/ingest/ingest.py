"""Ingest benchmark: single events over HTTP with wrk, then batch ingest, on PostgreSQL.

Run it through ``bench/ingest/run``. What it does:

1. creates a throwaway PostgreSQL database and migrates it;
2. seeds a realistic program: partners (two revoked), one link each, clicks over the last weeks
   (some flagged as bots), and identify bindings click -> customer, so most events really get
   attributed and the attribution queries do real work;
3. starts ``openpartner api --workers 2`` against it, authenticated with a program-bound
   ``events:write`` key as a merchant's backend would be;
4. single events: wrk sends ``POST /v1/events`` with a unique ``Idempotency-Key`` each, plus
   retries of recent keys (some race their first request), for ``--duration`` seconds;
5. batch: ``--batch-clients`` threads send ``POST /v1/events/batch`` with ``--batch-size``
   events each, for ``--batch-duration`` seconds; every tenth request is a retry of the client's
   previous batch, and every batch carries keys that all clients send at the same time;
6. checks every acknowledged key against the ``events`` table: lost (acknowledged, not stored),
   duplicated (a key acknowledged as new twice, or stored rows that no response accepted, or a
   replay answering another event id), and that no event has two sets of attribution.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from openpartner.accounts.service import create_key
from openpartner.clicks.models import Click
from openpartner.core.ids import new_id
from openpartner.db import scratch
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.identity.models import IdentityEdge
from openpartner.partners.models import Partner
from openpartner.programs.models import Program

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
HERE = Path(__file__).resolve().parent
SECRET = "bench-secret-" + secrets.token_hex(8)


# --------------------------------------------------------------------------- database


@dataclass
class Seed:
    program_id: str
    token: str
    customers: int
    bound_customers: int


def seed(engine: Engine, *, partners: int, clicks: int, customers: int) -> Seed:
    """Program, partners, links, clicks and click -> customer bindings. Customers numbered
    below ``clicks * 4 // 5`` are bound to one click (a fifth of them to a second, later
    click too); the others have no click yet, so their events stay unattributed."""
    now = datetime.now(UTC)
    rnd = random.Random(42)
    with Session(engine) as session:
        program = Program(
            id=new_id("prg"),
            name="Bench Partners",
            currency="USD",
            default_destination_url="https://bench.example/",
            allowed_domains=["bench.example"],
            attribution_window_days=60,
        )
        session.add(program)
        session.flush()
        partner_ids = []
        for i in range(partners):
            partner = Partner(
                id=new_id("ptn"),
                program_id=program.id,
                name=f"Partner {i}",
                email=f"partner{i}@bench.example",
                status="revoked" if i < 2 else "active",
            )
            session.add(partner)
            partner_ids.append(partner.id)
        session.flush()
        link_rows = [
            {
                "id": new_id("lnk"),
                "key": f"bench-{i}-{secrets.token_hex(3)}",
                "program_id": program.id,
                "partner_id": pid,
                "destination_url": "https://bench.example/",
                "archived": False,
                "created_at": now,
                "updated_at": now,
            }
            for i, pid in enumerate(partner_ids)
        ]
        session.execute(sa.insert(sa.table("links", *map(sa.column, link_rows[0]))), link_rows)
        click_rows = []
        for i in range(clicks):
            link = link_rows[rnd.randrange(partners)]
            click_rows.append(
                {
                    "id": new_id("clk"),
                    "link_id": link["id"],
                    "partner_id": link["partner_id"],
                    "program_id": program.id,
                    "clicked_at": now - timedelta(days=25 * (clicks - i) / clicks, hours=1),
                    "ip_hash": f"{rnd.getrandbits(256):064x}",
                    "visitor_hash": f"{rnd.getrandbits(256):064x}",
                    "user_agent": "Mozilla/5.0 (bench)",
                    "source": "router",
                    "bot": rnd.random() < 0.02,
                    "duplicate": False,
                    "velocity": False,
                    "revoked": False,
                }
            )
        session.execute(sa.insert(Click), click_rows)
        bound = clicks * 4 // 5
        edges = [
            {
                "id": new_id("idn"),
                "program_id": program.id,
                "click_id": click_rows[i]["id"],
                "customer_id": f"cus_{i}",
                "source": "api",
                "status": "bound",
                "created_at": now,
            }
            for i in range(bound)
        ]
        edges += [
            {
                "id": new_id("idn"),
                "program_id": program.id,
                "click_id": click_rows[i]["id"],
                "customer_id": f"cus_{i - bound}",
                "source": "api",
                "status": "bound",
                "created_at": now,
            }
            for i in range(bound, clicks)
        ]
        session.execute(sa.insert(IdentityEdge), edges)
        token = create_key(
            session, kind="secret", scopes=["events:write"], name="bench", program_id=program.id
        ).token
        session.commit()
        # Outside a transaction: an ANALYZE that is rolled back leaves no statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        return Seed(program.id, token, customers, bound)


# --------------------------------------------------------------------------- server


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used so far; gone processes are left out."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(
    database_url: str, port: int, workers: int, data_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "warning",  # no access log line per request
    }
    env.pop("ADMIN_API_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openpartner",
            "api",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=data_dir,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("openpartner api exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready")
            first = conn.getresponse()
            first.read()
            if first.status == 200:
                return proc
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    stop_api(proc)
    raise SystemExit("openpartner api did not become ready")


def stop_api(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class CpuMeter:
    """CPU seconds the API workers and the PostgreSQL backends of the bench database spend in
    a phase (user + system, from /proc). Unlike events/s, this barely depends on what else
    the machine runs, so it is the figure to compare between runs on a shared box.

    Backends are polled during the phase, so one that a pool opens and closes again within
    the phase is counted too (up to its last poll): connection churn is PostgreSQL work."""

    POLL_SECONDS = 0.1

    def __init__(self, proc: subprocess.Popen[bytes], engine: Engine, database: str) -> None:
        self.proc, self.engine, self.database = proc, engine, database
        self.api: dict[int, float] = {}
        self.pg_before: dict[int, float] = {}
        self.pg_seen: dict[int, float] = {}
        self.own: set[int] = set()
        self.polling = threading.Event()
        self.poller: threading.Thread | None = None

    _cpu = staticmethod(cpu_seconds)

    def _api_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [self.proc.pid, *map(int, children.split())]

    def _pg_pids(self, conn: sa.Connection) -> list[int]:
        """The bench database's backends, except the meter's own connections."""
        self.own.add(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
            {"d": self.database},
        ).scalars()
        return [pid for pid in pids if pid not in self.own]

    def _poll(self) -> None:
        with self.engine.connect() as conn:
            while True:
                # PIDs first, then their CPU: a backend started meanwhile is read next time.
                self.pg_seen.update(self._cpu(self._pg_pids(conn)))
                conn.rollback()
                if self.polling.wait(self.POLL_SECONDS):
                    return

    def start(self) -> None:
        self.api = self._cpu(self._api_pids())
        with self.engine.connect() as conn:
            self.pg_before = self._cpu(self._pg_pids(conn))
        self.pg_seen = dict(self.pg_before)
        self.polling.clear()
        self.poller = threading.Thread(target=self._poll, daemon=True)
        self.poller.start()

    def stop(self, events: int) -> dict[str, float]:
        """CPU milliseconds per event, and the PostgreSQL connections opened in the phase."""
        self.polling.set()
        assert self.poller is not None
        self.poller.join()
        with self.engine.connect() as conn:
            self.pg_seen.update(self._cpu(self._pg_pids(conn)))

        def spent(before: dict[int, float], now: dict[int, float]) -> float:
            return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())

        api = spent(self.api, self._cpu(self._api_pids()))
        seen = {pid: cpu for pid, cpu in self.pg_seen.items() if pid not in self.own}
        pg = spent(self.pg_before, seen)
        per = 1000 / max(events, 1)
        return {
            "api_cpu_ms": round(api * per, 3),
            "pg_cpu_ms": round(pg * per, 3),
            "pg_connections_opened": len(seen.keys() - self.pg_before.keys()),
        }


class Profiler:
    """``py-spy record`` on every API worker during a phase (``--profile DIR``): collapsed
    stacks per worker, ``DIR/<phase>-<pid>.txt``; ``bench/ingest/stacks.py`` summarises them."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path | None) -> None:
        self.proc, self.out = proc, out
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, phase: str, seconds: int) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        for pid in children.split():
            out = self.out / f"{phase}-{pid}.txt"
            self.running.append(
                subprocess.Popen(
                    [
                        "uvx",
                        "py-spy",
                        "record",
                        "--nonblocking",
                        "--gil",
                        "-r",
                        "100",
                        "-f",
                        "raw",
                        "-d",
                        str(seconds),
                        "-p",
                        pid,
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def wait(self) -> None:
        for p in self.running:
            p.wait()
        self.running.clear()


# --------------------------------------------------------------------------- checks


@dataclass
class Ledger:
    """What the clients were told, to be compared with what the database holds."""

    accepted: dict[str, str] = field(default_factory=dict)
    """key -> event id of the first (non-replayed) answer."""
    double_accepts: int = 0
    replays: list[tuple[str, str]] = field(default_factory=list)
    errors: int = 0
    rejected: int = 0
    answered: int = 0
    """Events in requests answered 2xx."""

    def accept(self, key: str, event_id: str) -> None:
        if key in self.accepted:
            self.double_accepts += 1
        else:
            self.accepted[key] = event_id

    def merge(self, other: Ledger) -> None:
        for key, event_id in other.accepted.items():
            self.accept(key, event_id)
        self.double_accepts += other.double_accepts
        self.replays += other.replays
        self.errors += other.errors
        self.rejected += other.rejected
        self.answered += other.answered


def verify(engine: Engine, program_id: str, prefix: str, ledger: Ledger) -> dict[str, int]:
    with engine.connect() as conn:
        stored: dict[str, str] = {
            external_id: event_id
            for external_id, event_id in conn.execute(
                sa.text(
                    "SELECT external_id, id FROM events"
                    " WHERE program_id = :p AND external_id LIKE :k"
                ),
                {"p": program_id, "k": prefix + "%"},
            ).tuples()
        }
        multi_attributed = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT a.event_id FROM attributions a"
                " JOIN events e ON e.id = a.event_id"
                " WHERE e.program_id = :p AND e.external_id LIKE :k"
                " GROUP BY a.event_id HAVING count(*) > 1) s"
            ),
            {"p": program_id, "k": prefix + "%"},
        ).scalar_one()
        attributed = conn.execute(
            sa.text(
                "SELECT count(DISTINCT a.event_id) FROM attributions a"
                " JOIN events e ON e.id = a.event_id"
                " WHERE e.program_id = :p AND e.external_id LIKE :k"
            ),
            {"p": program_id, "k": prefix + "%"},
        ).scalar_one()
    acknowledged = set(ledger.accepted) | {k for k, _ in ledger.replays}
    lost = sum(1 for k in acknowledged if k not in stored)
    wrong_id = sum(1 for k, i in ledger.accepted.items() if k in stored and stored[k] != i)
    wrong_replay = sum(1 for k, i in ledger.replays if stored.get(k, i) != i)
    unacknowledged = sum(1 for k in stored if k not in ledger.accepted)
    return {
        "stored": len(stored),
        "distinct_keys_accepted": len(ledger.accepted),
        "replays": len(ledger.replays),
        "lost": lost,
        "duplicated": ledger.double_accepts + wrong_id + wrong_replay,
        "stored_but_not_acknowledged": unacknowledged,
        "events_with_two_attribution_sets": int(multi_attributed),
        "attributed": int(attributed),
        "errors": ledger.errors,
        "rejected": ledger.rejected,
    }


# --------------------------------------------------------------------------- single events


def run_single(
    port: int,
    seed_: Seed,
    prefix: str,
    duration: int,
    connections: int,
    threads: int,
    retry_every: int,
) -> tuple[dict[str, Any], Ledger]:
    out = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    summary_file = out / "summary.json"
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "single.lua"),
        f"http://127.0.0.1:{port}/v1/events",
        "--",
        seed_.token,
        prefix,
        str(out),
        str(seed_.customers),
        str(retry_every),
    ]
    subprocess.run(
        cmd,
        check=True,
        env={**os.environ, "WRK_SUMMARY": str(summary_file)},
        stdout=subprocess.DEVNULL,
    )
    summary = json.loads(summary_file.read_text())
    ledger = Ledger()
    for path in sorted(out.glob("keys-*.txt")):
        for line in path.read_text().splitlines():
            kind, key, value = line.split(" ")
            if kind == "A":
                ledger.accept(key, value)
            elif kind == "R":
                ledger.replays.append((key, value))
            else:
                ledger.errors += 1
    socket_errors = sum(
        summary[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    ledger.errors += socket_errors
    seconds = summary["duration_us"] / 1e6
    return {
        "requests": summary["requests"],
        "seconds": round(seconds, 2),
        "events_per_s": round(summary["requests"] / seconds),
        "p50_ms": summary["p50_us"] / 1000,
        "p90_ms": summary["p90_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "max_ms": summary["max_us"] / 1000,
        "socket_errors": socket_errors,
    }, ledger


# --------------------------------------------------------------------------- batch


_ITEM = (
    '{"type":"sale","customer_id":"cus_%d","amount":%d,"currency":"USD",'
    '"external_id":"%s","metadata":{"n":%d}}'
)


def _item(key: str, n: int, customers: int) -> str:
    return _ITEM % ((n * 7919) % customers, 500 + (n * 37) % 20000, key, n)


def _batch_client(
    port: int,
    token: str,
    prefix: str,
    client: int,
    customers: int,
    size: int,
    shared: int,
    deadline: float,
    latencies: list[float],
    ledger: Ledger,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    previous: tuple[list[str], bytes] | None = None
    request = 0
    serial = 0
    while time.monotonic() < deadline:
        request += 1
        if previous is not None and request % 10 == 0:
            keys, body = previous  # a client retrying a whole batch: all duplicates
        else:
            keys, items = [], []
            for j in range(shared):
                # Every client sends these keys at its n-th request: concurrent overlaps.
                key = f"{prefix}-x-{request}-{j}"
                keys.append(key)
                items.append(_item(key, request * 1000 + j, customers))
            while len(keys) < size:
                serial += 1
                key = f"{prefix}-{client}-{serial}"
                keys.append(key)
                items.append(_item(key, client * 10_000_000 + serial, customers))
            order = list(range(len(keys)))
            random.shuffle(order)
            keys = [keys[i] for i in order]
            body = ('{"events":[' + ",".join(items[i] for i in order) + "]}").encode()
            previous = keys, body
        started = time.perf_counter()
        try:
            conn.request("POST", "/v1/events/batch", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            ledger.errors += len(keys)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            ledger.errors += len(keys)
            continue
        ledger.answered += len(keys)
        for result in json.loads(payload)["results"]:
            key = keys[result["index"]]
            if result["status"] == "accepted":
                ledger.accept(key, result["id"])
            elif result["status"] == "duplicate":
                ledger.replays.append((key, result["id"]))
            else:
                ledger.rejected += 1
    conn.close()


def run_batch(
    port: int, seed_: Seed, prefix: str, duration: int, clients: int, size: int, shared: int
) -> tuple[dict[str, Any], Ledger]:
    deadline = time.monotonic() + duration
    latencies: list[list[float]] = [[] for _ in range(clients)]
    ledgers = [Ledger() for _ in range(clients)]
    workers = [
        threading.Thread(
            target=_batch_client,
            args=(
                port,
                seed_.token,
                prefix,
                c,
                seed_.customers,
                size,
                shared,
                deadline,
                latencies[c],
                ledgers[c],
            ),
        )
        for c in range(clients)
    ]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    ledger = Ledger()
    for part in ledgers:
        ledger.merge(part)
    flat = sorted(x for part in latencies for x in part)
    events = ledger.answered
    return {
        "requests": len(flat),
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "new_events_per_s": round(len(ledger.accepted) / elapsed),
        "p50_ms": round(_percentile(flat, 50) * 1000, 1),
        "p99_ms": round(_percentile(flat, 99) * 1000, 1),
        "max_ms": round(flat[-1] * 1000, 1) if flat else 0.0,
    }, ledger


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def postgres_version(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW server_version").scalar_one())


def render(results: dict[str, Any]) -> str:
    s, b = results["single"], results["batch"]
    sc, bc = results["single_check"], results["batch_check"]
    a = results["args"]

    def cpu(r: dict[str, Any]) -> str:
        return f"{r['api_cpu_ms']:.3f} + {r['pg_cpu_ms']:.3f} ms"

    lines = [
        f"Measured {results['date']} on {results['machine']}, PostgreSQL {results['postgres']}, "
        f"`openpartner api --workers {a['workers']}`; load generator on the same machine. "
        f"Load average before the run: {results['load_before']}.",
        "",
        f"Command: `{results['command']}`",
        "",
        "| | events/s | p50 | p99 | CPU per event (API + PostgreSQL) | target |",
        "|---|---:|---:|---:|---:|---|",
        f"| single `POST /v1/events` (wrk, {a['connections']} connections, {a['duration']} s) "
        f"| {s['events_per_s']:,} | {s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {cpu(s)} "
        f"| ≥ 3,000/s, p99 < 50 ms |",
        f"| batch `POST /v1/events/batch` ({a['batch_size']}/request, {a['batch_clients']} "
        f"clients, {a['batch_duration']} s; latency per request) "
        f"| {b['events_per_s']:,} | {b['p50_ms']:.0f} ms | {b['p99_ms']:.0f} ms | {cpu(b)} "
        f"| ≥ 100,000/s |",
        "",
        f"PostgreSQL connections the API opened during the phase: "
        f"{s.get('pg_connections_opened', '?')} (single), "
        f"{b.get('pg_connections_opened', '?')} (batch).",
        "",
        "| check | single | batch |",
        "|---|---:|---:|",
    ]
    for key in (
        "distinct_keys_accepted",
        "stored",
        "replays",
        "lost",
        "duplicated",
        "stored_but_not_acknowledged",
        "events_with_two_attribution_sets",
        "attributed",
        "errors",
        "rejected",
    ):
        lines.append(f"| {key.replace('_', ' ')} | {sc[key]:,} | {bc[key]:,} |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- ingest:results -->", "<!-- /ingest:results -->"

SECTION = f"""## Ingest

`bench/ingest/run` measures event ingest on PostgreSQL against `openpartner api --workers 2`:
single events over HTTP (wrk) and batch ingest, and proves nothing was lost or duplicated.

### Latest run

{BEGIN}
{END}
"""


def write_doc(results: dict[str, Any]) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    if "## Ingest" not in text:
        text = text.rstrip("\n") + "\n\n" + SECTION
    block = f"{BEGIN}\n{render(results)}{END}"
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    DOC.write_text(text)


# --------------------------------------------------------------------------- main


def main() -> int:
    # Killed (a timeout, kill): exit through `finally`, which stops the servers started in
    # sessions of their own; the default action would leave them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=20, help="seconds of single events")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--retry-every",
        type=int,
        default=20,
        help="one single-event request in N retries a recent key",
    )
    parser.add_argument("--batch-duration", type=int, default=20)
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--shared-keys",
        type=int,
        default=10,
        help="keys per batch that every client sends at the same time",
    )
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--clicks", type=int, default=25_000)
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the API workers during each phase, stacks into DIR",
    )
    parser.add_argument(
        "--write-doc",
        action="store_true",
        help="write the figures into docs/benchmarks.md (## Ingest)",
    )
    args = parser.parse_args()

    url, name = scratch.create_database(args.pg_url, "openpartner_bench")
    engine = create_engine(url)
    proc = None
    try:
        upgrade(engine)
        seed_ = seed(engine, partners=args.partners, clicks=args.clicks, customers=args.customers)
        print(
            f"database {name}: {args.partners} partners, {args.clicks} clicks, "
            f"{seed_.bound_customers} of {args.customers} customers bound",
            flush=True,
        )
        data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
        port = free_port()
        proc = start_api(url, port, args.workers, data_dir)
        profiler = Profiler(proc, args.profile)
        meter = CpuMeter(proc, engine, name)
        run = secrets.token_hex(3)
        results: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "postgres": postgres_version(engine),
            "command": "bench/ingest/run " + " ".join(sys.argv[1:]),
            "args": vars(args),
        }
        if not args.skip_single:
            # A short warm-up (own keys, also checked) so both workers have their caches.
            run_single(port, seed_, f"w{run}", 3, args.connections, args.wrk_threads, 0)
            print(f"single events: wrk for {args.duration} s ...", flush=True)
            profiler.start("single", args.duration)
            meter.start()
            single, ledger = run_single(
                port,
                seed_,
                f"s{run}",
                args.duration,
                args.connections,
                args.wrk_threads,
                args.retry_every,
            )
            single.update(meter.stop(single["requests"]))
            profiler.wait()
            results["single"] = single
            results["single_check"] = verify(engine, seed_.program_id, f"s{run}", ledger)
            print(
                json.dumps({"single": single, "check": results["single_check"]}, indent=1),
                flush=True,
            )
        if not args.skip_batch:
            print(
                f"batch: {args.batch_clients} clients for {args.batch_duration} s ...", flush=True
            )
            profiler.start("batch", args.batch_duration)
            meter.start()
            batch, ledger = run_batch(
                port,
                seed_,
                f"b{run}",
                args.batch_duration,
                args.batch_clients,
                args.batch_size,
                args.shared_keys,
            )
            batch.update(meter.stop(batch["events"]))
            profiler.wait()
            results["batch"] = batch
            results["batch_check"] = verify(engine, seed_.program_id, f"b{run}", ledger)
            print(
                json.dumps({"batch": batch, "check": results["batch_check"]}, indent=1), flush=True
            )
        ok = all(
            results[c]["lost"] == 0
            and results[c]["duplicated"] == 0
            and results[c]["events_with_two_attribution_sets"] == 0
            for c in ("single_check", "batch_check")
            if c in results
        )
        if "single" in results and "batch" in results:
            print()
            print(render(results))
            if args.write_doc:
                write_doc(results)
                print(f"wrote {DOC.relative_to(ROOT)}")
        print("integrity:", "OK (nothing lost, nothing duplicated)" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        if proc is not None:
            stop_api(proc)
        engine.dispose()
        if not args.keep:
            scratch.drop_database(args.pg_url, name)


if __name__ == "__main__":
    sys.exit(main())
