"""The floor of event ingest on this machine: what the cheapest parts any correct ingest needs
cost, with none of OpenPartner's own logic. Run it through ``bench/ingest/floor``; the figures
say how far the targets of ``bench/ingest/run`` can be reached here at all (docs/benchmarks.md).

1. HTTP: ``POST /v1/events`` that only validates the body as the real ``EventIn`` and answers a
   constant (``floor_apps.py``), served by uvicorn with 2 workers as ``openpartner api`` is,
   under wrk: once with FastAPI, once as a bare ASGI function. Requests/s, p99, and CPU per
   request of the server processes and of wrk.
2. PostgreSQL: backend CPU per event to store events, committed per statement, on a throwaway
   database migrated to the real schema:
   - ``events``: the production table (seven indexes, two JSONB columns), as ingest inserts,
     in statements of 1,000 (a batch) and of 10 (a group of single events);
   - ``keyed``: the least a table can be and still answer "duplicate" per item: the unique
     ``(program_id, external_id)``, the request hash and the body;
   - ``copy``: ``COPY`` into a table with no index at all. It cannot answer duplicates: the
     lower bound of storing anything.
3. Python per event: validating a batch body (``list[EventIn]``) and the request hash that
   tells a retry from a conflict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from ingest import cpu_seconds, free_port  # this folder's main bench
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from openpartner.core.ids import new_id
from openpartner.db import scratch
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.events.schemas import EventIn
from openpartner.events.service import request_hash
from openpartner.programs.models import Program

HERE = Path(__file__).resolve().parent
GROUP = 10
"""Events per statement as group commit writes single events (8 to 13 in bench/ingest/run)."""
BODY = '{"type":"sale","customer_id":"cus_%d","amount":%d,"currency":"USD","metadata":{"n":%d}}'
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{BODY % (1, 1999, 1)}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "floor-1"
"""


# --------------------------------------------------------------------------- HTTP


def server_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [pid, *map(int, children.split())]


def wrk(port: int, script: str, seconds: int, connections: int) -> tuple[str, float]:
    """wrk's report and the CPU seconds wrk itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            *("wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script),
            f"http://127.0.0.1:{port}/v1/events",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, used


def latency_ms(report: str, label: str) -> float:
    match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", report, re.M)
    if match is None:
        raise RuntimeError(f"no {label} latency in wrk's report:\n{report}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def http_floor(app: str, workers: int, seconds: int, connections: int) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), f"floor_apps:{app}"),
            *("--port", str(port), "--workers", str(workers), "--log-level", "warning"),
        ],
    )
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.0)  # every worker up
        wrk(port, str(script), 2, connections)  # warm-up
        pids = server_pids(server.pid)
        cpu_before = sum(cpu_seconds(pids).values())
        report, wrk_cpu = wrk(port, str(script), seconds, connections)
        server_cpu = sum(cpu_seconds(pids).values()) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
        script.unlink()
    requests = int(re.search(r"(\d+) requests in", report).group(1))  # type: ignore[union-attr]
    return {
        "requests_per_s": requests / seconds,
        "p50_ms": latency_ms(report, "50%"),
        "p99_ms": latency_ms(report, "99%"),
        "server_cpu_ms": 1000 * server_cpu / requests,
        "wrk_cpu_ms": 1000 * wrk_cpu / requests,
    }


# --------------------------------------------------------------------------- PostgreSQL

_COLUMNS = (
    "id, program_id, type, customer_id, deal_id, amount, currency, refund_of, promotion_code, "
    "occurred_at, received_at, external_id, request_hash, source, metadata, response"
)
_TYPES = (
    "varchar[], varchar[], varchar[], varchar[], varchar[], bigint[], varchar[], varchar[], "
    "varchar[], timestamptz[], timestamptz[], varchar[], varchar[], varchar[], jsonb[], jsonb[]"
)
EVENTS_SQL = (
    f"INSERT INTO events ({_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}" for t in _TYPES.split(", "))
    + ") ON CONFLICT (program_id, external_id) DO NOTHING RETURNING program_id, external_id"
)
KEYED_DDL = """CREATE TABLE keyed (
    seq bigserial PRIMARY KEY,
    program_id varchar(32) COLLATE "C" NOT NULL,
    external_id varchar(255) COLLATE "C" NOT NULL,
    request_hash varchar(64) NOT NULL,
    body jsonb NOT NULL,
    UNIQUE (program_id, external_id))"""
KEYED_SQL = (
    "INSERT INTO keyed (program_id, external_id, request_hash, body) "
    "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::jsonb[]) "
    "ON CONFLICT (program_id, external_id) DO NOTHING RETURNING external_id"
)
COPY_DDL = "CREATE TABLE copied (program_id text, external_id text, request_hash text, body text)"


def event_rows(program_id: str, size: int) -> list[tuple[Any, ...]]:
    """Rows as ingest builds them, with a stored response of the real size."""
    now = datetime.now(UTC)
    rows = []
    for n in range(size):
        key = uuid.uuid4().hex
        response = {
            "id": new_id("evt"),
            "object": "event",
            "type": "sale",
            "program_id": program_id,
            "customer_id": f"cus_{n}",
            "amount": 500 + n,
            "currency": "USD",
            "occurred_at": now.isoformat(),
            "external_id": key,
            "refund_of": None,
            "promotion_code": None,
            "deal_id": None,
            "metadata": {"n": n},
            "attributed_to": [{"partner_id": new_id("ptn"), "amount": 50, "currency": "USD"}],
        }
        rows.append(
            (
                *(new_id("evt"), program_id, "sale", f"cus_{n}", None, 500 + n, "USD", None, None),
                *(now, now, key, key + key, "api", json.dumps({"n": n}), json.dumps(response)),
            )
        )
    return rows


def backend_cpu(conn: psycopg.Connection[Any]) -> float:
    return sum(cpu_seconds([conn.info.backend_pid]).values())


def db_floor(pg_url: str, rounds: int, size: int) -> dict[str, float]:
    url, name = scratch.create_database(pg_url, "openpartner_floor")
    engine = create_engine(url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            program = Program(
                id=new_id("prg"),
                name="Floor",
                currency="USD",
                default_destination_url="https://floor.example/",
                allowed_domains=["floor.example"],
            )
            session.add(program)
            session.commit()
            program_id = program.id
        engine.dispose()
        libpq = sa.engine.make_url(url).set(drivername="postgresql")
        with psycopg.connect(libpq.render_as_string(hide_password=False)) as conn:
            conn.execute(KEYED_DDL)
            conn.execute(COPY_DDL)
            conn.commit()
            out = {}
            for table, per_statement in (
                ("events", size),
                ("events", GROUP),
                ("keyed", size),
                ("copy", size),
            ):
                # The same number of events whatever the statement size.
                statements = rounds * size // per_statement
                rows = [event_rows(program_id, per_statement) for _ in range(statements)]
                before = backend_cpu(conn)
                for batch in rows:
                    store(conn, table, batch)
                used = backend_cpu(conn) - before
                out[f"{table}/{per_statement}"] = 1e6 * used / (rounds * size)
            return out
    finally:
        engine.dispose()
        scratch.drop_database(pg_url, name)


def store(conn: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    if table == "events":
        conn.execute(EVENTS_SQL, [list(c) for c in zip(*rows, strict=True)], prepare=True)
    elif table == "keyed":
        keyed = [(r[1], r[11], r[12], r[14]) for r in rows]
        conn.execute(KEYED_SQL, [list(c) for c in zip(*keyed, strict=True)], prepare=True)
    else:
        with conn.cursor().copy("COPY copied FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r[1], r[11], r[12], r[14]))
    conn.commit()


# --------------------------------------------------------------------------- Python


def python_floor(size: int, repeat: int) -> dict[str, float]:
    body = ("[" + ",".join(BODY % (n, 500 + n, n) for n in range(size)) + "]").encode()
    adapter: TypeAdapter[list[EventIn]] = TypeAdapter(list[EventIn])
    events = adapter.validate_json(body)

    def best(fn: Any) -> float:
        fastest = float("inf")
        for _ in range(repeat):
            start = time.process_time()
            fn()
            fastest = min(fastest, time.process_time() - start)
        return 1e6 * fastest / size

    return {
        "validate": best(lambda: adapter.validate_json(body)),
        "request_hash": best(lambda: [request_hash("prg_floor", e) for e in events]),
    }


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per app")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30, help="thousands of events per table")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    http = {
        app: http_floor(app, 2, args.duration, args.connections)
        for app in ("fastapi_app", "asgi_app")
    }
    pg = db_floor(args.pg_url, args.rounds, 1000)
    py = python_floor(1000, 20)

    print(f"\n{cores} cores; every CPU figure is per request or per event.\n")
    print(
        "| HTTP floor: validate the body, answer a constant | requests/s | p50 | p99 "
        "| CPU server + wrk |"
    )
    print("|---|---:|---:|---:|---:|")
    for app, label in (("fastapi_app", "FastAPI"), ("asgi_app", "bare ASGI")):
        h = http[app]
        print(
            f"| {label}, uvicorn, 2 workers | {h['requests_per_s']:,.0f} | {h['p50_ms']:.1f} ms "
            f"| {h['p99_ms']:.1f} ms | {h['server_cpu_ms']:.3f} + {h['wrk_cpu_ms']:.3f} ms |"
        )
    print("\n| PostgreSQL floor: store and commit | backend CPU per event |")
    print("|---|---:|")
    labels = {
        "events/1000": "INSERT 1,000 per statement into `events` (production schema)",
        f"events/{GROUP}": f"the same, {GROUP} events per statement (a group of single events)",
        "keyed/1000": "INSERT 1,000 into a keyed table (unique key, hash, body)",
        "copy/1000": "COPY 1,000 into a table without index (no duplicate answers)",
    }
    for table, label in labels.items():
        print(f"| {label} | {pg[table]:.1f} µs |")
    print("\n| Python per event | CPU |")
    print("|---|---:|")
    print(f"| validate a batch body (`list[EventIn]`) | {py['validate']:.1f} µs |")
    print(f"| request hash | {py['request_hash']:.1f} µs |")

    keyed_floor = pg["keyed/1000"] + py["validate"] + py["request_hash"]
    print(
        f"\nBatch ceiling with per-item duplicate answers, before HTTP, the client and "
        f"attribution: {cores} cores / {keyed_floor:.1f} µs = {cores * 1e6 / keyed_floor:,.0f} "
        f"events/s (target 100,000)."
    )
    fastest = http["asgi_app"]
    per_request = fastest["server_cpu_ms"] + fastest["wrk_cpu_ms"]
    left = 1000 * cores / 3000 - per_request
    print(
        f"Single events at 3,000/s: {1000 * cores / 3000:.3f} ms of CPU per request, of which "
        f"the bare server and wrk take {per_request:.3f} ms; {left:.3f} ms would be left for "
        f"the key, the database round trips and the insert ({pg[f'events/{GROUP}'] / 1000:.3f} "
        f"ms of PostgreSQL CPU per event to insert and commit {GROUP} at a time)."
    )


if __name__ == "__main__":
    main()
