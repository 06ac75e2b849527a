"""Bursts of concurrent POST /v1/clicks (publishable key, Origin) against `openpartner api`.

Starts the API on a throwaway database (SQLite file and/or PostgreSQL), sends N clicks at once,
polls /health meanwhile, and prints the time until the last answer, the answers by status, the
slowest /health poll and the click rows written. Each run is a fresh server (a cold key cache,
as a page's first burst).

    uv run python bench/concurrency/burst.py [--requests 64] [--runs 3] [--db sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import create_key
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

ORIGIN = "https://shop.acme.example"
ADMIN = Principal(key_id="key_bench", kind="secret", is_admin=True)
PG_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def seed(url: str) -> str:
    """A program, a partner, a link ``bench-via`` and a publishable key (returned)."""
    engine = create_engine(url)
    upgrade(engine)
    with Session(engine) as session, session.begin():
        program = create_program(
            session,
            ADMIN,
            ProgramCreate.model_validate(
                {
                    "name": "Bench",
                    "currency": "USD",
                    "default_destination_url": "https://acme.example/",
                    "allowed_domains": ["acme.example", "*.acme.example"],
                    "allowed_origins": [ORIGIN],
                }
            ),
        )
        partner = create_partner(
            session,
            ADMIN,
            PartnerCreate(program_id=program.id, name="Pat", email="pat@partner.example"),
        )
        create_link(session, ADMIN, LinkCreate(partner_id=partner.id, key="bench-via"))
        token = create_key(
            session, kind="publishable", scopes=["visitors:write"], program_id=program.id
        ).token
    engine.dispose()
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def burst(
    base: str, token: str, requests: int
) -> tuple[float, collections.Counter[str], float]:
    headers = {"Authorization": f"Bearer {token}", "Origin": ORIGIN}
    limits = httpx.Limits(max_connections=requests + 1)
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client,
        httpx.AsyncClient(base_url=base, timeout=60) as prober,
    ):
        done, slowest = False, 0.0

        async def one() -> str:
            try:
                answer = await client.post(
                    "/v1/clicks", json={"link_key": "bench-via"}, headers=headers
                )
            except httpx.HTTPError as exc:
                return type(exc).__name__
            return str(answer.status_code)

        async def poll() -> None:
            nonlocal slowest
            while not done:
                started = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    await prober.get("/health", timeout=5)
                slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll())
        started = time.monotonic()
        answers = await asyncio.gather(*(one() for _ in range(requests)))
        elapsed = time.monotonic() - started
        done = True
        await poller
    return elapsed, collections.Counter(answers), slowest


def run(url: str, requests: int) -> str:
    token = seed(url)
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DATA_DIR": data,
            "SECRET_KEY": secrets.token_hex(16),
            "LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "openpartner", "api", "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(base + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            elapsed, answers, slowest = asyncio.run(burst(base, token, requests))
        finally:
            server.kill()
            server.wait()
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.scalar(sa.select(sa.func.count()).select_from(Click))
    engine.dispose()
    statuses = ", ".join(f"{n} x {s}" for s, n in sorted(answers.items()))
    return f"{elapsed:6.2f} s  [{statuses}]  slowest /health {slowest:.2f} s  rows {rows}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    for db in args.db:
        for _ in range(args.runs):
            if db == "postgresql":
                url, name = scratch.create_database(PG_URL, "openpartner_bench")
                try:
                    print(db, run(url, args.requests), flush=True)
                finally:
                    scratch.drop_database(PG_URL, name)
            else:
                with tempfile.TemporaryDirectory() as folder:
                    print(
                        db, run(f"sqlite:///{Path(folder) / 'bench.db'}", args.requests), flush=True
                    )


if __name__ == "__main__":
    main()
