"""CPU time per request of the router, per component: the measure to compare designs by on a
shared machine, where requests/s move with everyone else's load but CPU per request does not.

    uv run python bench/router/cpu.py [--backend postgresql|sqlite] [--workers 2] [--duration 10]

Starts the router as bench.py does, warms it up, then reads the CPU time (user + system, from
/proc) of the router's processes (the server and its workers, every thread), of the PostgreSQL
backends serving its database, and of wrk, around one wrk run; divides each by the requests
answered, once every answered click has been written (clicks still buffered when wrk stops
are part of the cost). Then stops the router cleanly and checks no click was lost.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from openpartner.db import scratch

sys.path.insert(0, str(Path(__file__).parent))
from bench import (
    LINK_KEY,
    PG_ADMIN_URL,
    count_clicks,
    free_port,
    seed,
    wait_workers,
    wrk,
)

TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def cpu_us(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * TICK_US


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except ProcessLookupError:
                continue
    return pids


def children_cpu_us() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1_000_000


def wait_written(url: str, rows: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while count_clicks(url) < rows and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> None:
    # Killed (a timeout, kill): exit through `finally`, which stops the servers started in
    # sessions of their own; the default action would leave them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="postgresql")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--single-visitor", dest="visitors", action="store_false")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openpartner-cpu-"))
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")  # pg_stat_activity
    name = ""
    if args.backend == "postgresql":
        url, name = scratch.create_database(PG_ADMIN_URL, "openpartner_bench_cpu")
    else:
        url = f"sqlite:///{tmp}/cpu.db"
    try:
        seed(url)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DATA_DIR": str(tmp / "data"),
            "SECRET_KEY": "bench-secret",
            "ROUTER_IP_RATE_LIMIT": "0",
            "LOG_LEVEL": "warning",
        }
        cmd = [sys.executable, "-m", "openpartner", "router", "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, "--workers", str(args.workers)], env=env, start_new_session=True
        )
        try:
            link = f"http://127.0.0.1:{port}/{LINK_KEY}"
            wait_workers(f"http://127.0.0.1:{port}/health", args.workers)
            warm = wrk(link, 2, args.connections, args.visitors)
            wait_written(url, warm.requests)  # the warm-up's clicks are not this run's work
            router = group_pids(proc.pid)

            def backends() -> dict[int, float]:
                # The pool may open connections during the run: they count from their start.
                with admin.connect() as conn:
                    pids = conn.exec_driver_sql(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
                    ).scalars()
                    return {pid: cpu_us([pid]) for pid in pids}

            load_before = os.getloadavg()
            before = cpu_us(router), backends()
            wrk_before = children_cpu_us()
            result = wrk(link, args.duration, args.connections, args.visitors)
            wrk_us = children_cpu_us() - wrk_before
            written_by_end = count_clicks(url)
            # The clicks still buffered when wrk stops are part of the cost: wait until every
            # answered click is in the table, then read the clocks.
            wait_written(url, warm.requests + result.requests)
            after = cpu_us(router), backends()
            health = {}
            for _ in range(20):  # each worker's counters (a new connection per request)
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                health[body["pid"]] = body
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        rows = count_clicks(url)
        n = result.requests
        router_us = (after[0] - before[0]) / n
        pg_us = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items()) / n
        wrk_us /= n
        visitors = "new visitors" if args.visitors else "one visitor"
        print(
            f"{args.backend}, {args.workers} workers, {visitors}: "
            f"{result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms; "
            f"CPU per request: router {router_us:.1f} us, postgresql {pg_us:.1f} us, "
            f"wrk {wrk_us:.1f} us; written by the end of the run {written_by_end:,} of "
            f"{n + warm.requests:,}; lost {max(0, n + warm.requests - rows)}; "
            f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        for pid, body in health.items():
            print(
                f"  worker {pid}: flush max {body['flush_ms_max']:.0f} ms, "
                f"{body['flushes']} flushes, {body['clicks_spooled']} spooled"
            )
    finally:
        admin.dispose()
        if name:
            scratch.drop_database(PG_ADMIN_URL, name)


if __name__ == "__main__":
    main()
