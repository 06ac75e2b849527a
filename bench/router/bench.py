"""Router benchmark driver (run it through bench/router/run, which installs wrk and nginx).

For each configuration: start the server, warm it up, run wrk, stop the server cleanly (the
router flushes its buffer on shutdown), then count the rows in ``clicks``. Clicks lost =
requests answered (warm-up + measured run, as wrk counts them) minus rows written; it must be 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from openpartner.accounts.scopes import Principal
from openpartner.clicks.models import Click
from openpartner.db import scratch
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.links.schemas import LinkCreate
from openpartner.links.service import create_link
from openpartner.partners.schemas import PartnerCreate
from openpartner.partners.service import create_partner
from openpartner.programs.schemas import ProgramCreate
from openpartner.programs.service import create_program

PG_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari"
LINK_KEY = "bench"
# What the router answers for this link, with a fixed click id: the same bytes on the wire.
NGINX_TARGET = "https://shop.example/pricing?plan=pro&utm_source=partner&cref=clk_01JD3ZZZZZZZZZZZZZZZZZZZZZ#top"
DESTINATION = "https://shop.example/pricing?plan=pro&utm_source=partner#top"
ADMIN = Principal(key_id="key_bench", kind="secret", is_admin=True)


@dataclass
class Result:
    name: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rows: int | None = None
    rows_at_end: int | None = None
    """Rows written when wrk stopped: the rest were still buffered (written on shutdown)."""

    @property
    def lost(self) -> int | None:
        return None if self.rows is None else max(0, self.requests - self.rows)


VISITORS = Path(__file__).with_name("visitors.lua")


def wrk(url: str, duration: int, connections: int, visitors: bool = True) -> Result:
    # A browser user agent, and a Host on the program's cookie domain so the cookie is set too.
    headers = ["-H", f"User-Agent: {UA}", "-H", "Host: go.shop.example"]
    script = ["-s", str(VISITORS)] if visitors else []
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", *script, *headers, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print("  wrk:", socket_errors.group(0))
    return Result(
        name=url,
        requests=requests,
        rps=rps,
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        errors=int(errors.group(1)) if errors else 0,
    )


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wait_workers(health_url: str, workers: int, timeout: float = 60) -> None:
    """Until every worker answers ready: wrk opens its connections once, and a worker still
    starting would get none of them. Each request opens a new connection, so the kernel hands
    it to any worker that accepts; the pid in /health tells them apart."""
    deadline = time.monotonic() + timeout
    ready: set[int] = set()
    while len(ready) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(ready)} of {workers} router workers came up")
        try:
            response = httpx.get(health_url, timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        if response.status_code == 200:
            ready.add(response.json()["pid"])
        else:
            time.sleep(0.05)


def run_nginx(tmp: Path, args: argparse.Namespace) -> Result:
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 302 "{NGINX_TARGET}"; }}
  }}
}}
"""
    )
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-g", "daemon off;"])
    try:
        url = f"http://127.0.0.1:{port}/{LINK_KEY}"
        wait_http(url)
        wrk(url, 2, args.connections, args.visitors)
        result = wrk(url, args.duration, args.connections, args.visitors)
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)
    result.name = "nginx `return 302` (ceiling)"
    return result


def seed(url: str) -> None:
    engine = create_engine(url)
    upgrade(engine)
    with sa.orm.Session(engine) as session, session.begin():
        program = create_program(
            session,
            ADMIN,
            ProgramCreate(
                name="Bench",
                currency="USD",
                default_destination_url=DESTINATION,
                allowed_domains=["shop.example"],
                cookie_domain="shop.example",
            ),
        )
        partner = create_partner(
            session, ADMIN, PartnerCreate(program_id=program.id, name="P", email="p@bench.example")
        )
        create_link(session, ADMIN, LinkCreate(partner_id=partner.id, key=LINK_KEY))
    engine.dispose()


def count_clicks(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.scalar(sa.select(sa.func.count()).select_from(Click))
    engine.dispose()
    return int(rows or 0)


def run_router(url: str, backend: str, workers: int, tmp: Path, args: argparse.Namespace) -> Result:
    port = free_port()
    data = tmp / f"data-{backend}-{workers}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATA_DIR": str(data),
        "SECRET_KEY": "bench-secret",
        "ROUTER_IP_RATE_LIMIT": "0",  # wrk is one IP; the cap would answer 429
        "LOG_LEVEL": "info",
    }
    before = count_clicks(url)
    cmd = [
        sys.executable,
        "-m",
        "openpartner",
        "router",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    # Its own process group, so an interrupted benchmark never leaves workers behind.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        link = f"http://127.0.0.1:{port}/{LINK_KEY}"
        wait_workers(f"http://127.0.0.1:{port}/health", workers)
        warm = wrk(link, 2, args.connections, args.visitors)
        result = wrk(link, args.duration, args.connections, args.visitors)
        result.rows_at_end = count_clicks(url) - before
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean shutdown: the router flushes its buffer
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result.requests += warm.requests
    result.rows = count_clicks(url) - before
    result.name = f"router, {workers} worker{'s' if workers > 1 else ''}, {backend}"
    spool = data / "spool"
    if spool.exists() and any(spool.iterdir()):
        print("  spool not empty after shutdown:", list(spool.iterdir()))
    return result


def main() -> None:
    # Killed (a timeout, kill): exit through `finally`, which stops the servers started in
    # sessions of their own; the default action would leave them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--output", type=Path)
    parser.add_argument(
        "--single-visitor",
        dest="visitors",
        action="store_false",
        help="every request from the same client (plain wrk) instead of a new visitor each time",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="openpartner-bench-"))
    results = [run_nginx(tmp, args)]
    print(results[0])
    for backend in args.backends.split(","):
        if backend == "postgresql":
            url, name = scratch.create_database(PG_ADMIN_URL, "openpartner_bench_router")
        else:
            url = f"sqlite:///{tmp}/bench.db"
        try:
            seed(url)
            for workers in (int(w) for w in args.workers.split(",")):
                results.append(run_router(url, backend, workers, tmp, args))
                print(results[-1])
        finally:
            if backend == "postgresql":
                scratch.drop_database(PG_ADMIN_URL, name)
    report = render(results, args)
    print(report)
    if args.output:
        args.output.write_text(report)
    shutil.rmtree(tmp, ignore_errors=True)


def render(results: list[Result], args: argparse.Namespace) -> str:
    ceiling = results[0].rps
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{platform.system()} {platform.release()}; wrk -t2 -c{args.connections} "
        f"-d{args.duration}s on the same machine; "
        + ("a new visitor per request" if args.visitors else "one visitor for every request")
        + f"; load average after the run {load}.",
        "",
        "| configuration | requests/s | % of nginx | p50 ms | p99 ms | non-3xx | answered "
        "| rows when wrk stopped | rows written | clicks lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {100 * r.rps / ceiling:.0f} % | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {r.requests if r.rows is not None else '—'} | "
            f"{r.rows_at_end if r.rows_at_end is not None else '—'} | "
            f"{r.rows if r.rows is not None else '—'} | {r.lost if r.rows is not None else '—'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
