"""Helpers for the router and clicks tests: a database the router's own engine (and router
processes) can reach, seeded with committed rows; waiting; router processes; a TCP proxy that
makes PostgreSQL unreachable on demand."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.router.app import RouterApp
from openpartner.settings import Settings
from tests.conftest import create_test_database
from tests.factories import make_link, make_partner, make_program

SECRET = "test-secret-current,test-secret-old"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


@dataclass
class RouterDatabase:
    url: str
    engine: Engine


def router_database() -> Iterator[RouterDatabase]:
    """A migrated throwaway database whose committed rows other engines and processes see."""
    url, drop = create_test_database()
    engine = create_engine(url)
    upgrade(engine)
    try:
        yield RouterDatabase(url, engine)
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


@dataclass
class Seeded:
    key: str
    link_id: str
    partner_id: str
    program_id: str
    destination: str


def seed_link(
    engine: Engine,
    *,
    destination_url: str | None = None,
    program: dict[str, Any] | None = None,
    partner_status: str = "active",
) -> Seeded:
    with Session(engine) as session, session.begin():
        prog = make_program(session, **(program or {}))
        partner = make_partner(session, program=prog)
        link = make_link(session, partner=partner, destination_url=destination_url)
        partner.status = partner_status
        return Seeded(
            key=link.key,
            link_id=link.id,
            partner_id=partner.id,
            program_id=prog.id,
            destination=destination_url or prog.default_destination_url,
        )


def router_settings(url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": url,
        "secret_key": SECRET,
        "router_flush_interval_ms": 20,
        "router_cache_poll_ms": 20,
        "router_ip_rate_limit": 0,
        "router_trusted_proxies": "testclient,127.0.0.1",
        **overrides,
    }
    return Settings(_env_file=None, **values)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def stored_clicks(engine: Engine, ids: list[str]) -> dict[str, Click]:
    with Session(engine) as session:
        rows = session.scalars(sa.select(Click).where(Click.id.in_(ids))).all()
    return {row.id: row for row in rows}


def count_clicks(engine: Engine, **where: str) -> int:
    with engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(Click)
        for column, value in where.items():
            stmt = stmt.where(getattr(Click, column) == value)
        return int(conn.scalar(stmt) or 0)


def click_id_of(location: str, param: str = "cref") -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(location).query)[param][-1]


# --- the in-process router ----------------------------------------------------------------


def start(db: RouterDatabase, tmp_path: Path, **overrides: Any) -> tuple[TestClient, RouterApp]:
    app = RouterApp(router_settings(db.url, tmp_path / "data", **overrides))
    client = TestClient(app, follow_redirects=False, headers={"user-agent": BROWSER})
    client.__enter__()
    wait_until(lambda: app.cache.loaded, what="links loaded")
    return client, app


def seed(db: RouterDatabase, client: TestClient, **kwargs: Any) -> Seeded:
    """A committed link, once the router's cache has it (HEAD records no click)."""
    link = seed_link(db.engine, **kwargs)
    wait_until(lambda: client.head(f"/{link.key}").status_code != 404, timeout=2, what="link")
    return link


def written(db: RouterDatabase, *click_ids: str) -> dict[str, Click]:
    def all_there() -> dict[str, Click] | None:
        rows = stored_clicks(db.engine, list(click_ids))
        return rows if len(rows) == len(click_ids) else None

    result: dict[str, Click] = wait_until(all_there, what="clicks written")
    return result


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        return httpx.get(self.base + "/health", timeout=2).json()  # type: ignore[no-any-return]

    def stop(self, timeout: float = 30) -> int:
        """Clean shutdown (SIGTERM: the router flushes); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill_all(self) -> None:
        """Teardown: stop the server and every worker it started, whatever state they are in.
        Each router runs in its own process group, so no worker outlives its test."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.stop(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)


def start_router(
    url: str, data_dir: Path, *, workers: int = 1, ready: bool = True, **env: str
) -> RouterProcess:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"router-{port}.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ROUTER_", "REDIS_"))},
        "DATABASE_URL": url,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET,
        "ROUTER_FLUSH_INTERVAL_MS": "50",
        "ROUTER_CACHE_POLL_MS": "100",
        "ROUTER_IP_RATE_LIMIT": "0",
        "LOG_LEVEL": "warning",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openpartner",
                "router",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    router = RouterProcess(process, port, log)
    ready_workers: set[int] = set()

    def up() -> bool:
        """Every worker answers ready (or, with ``ready=False``, any answers at all). Each probe
        is a new connection, which the kernel hands to any worker; ``pid`` tells them apart."""
        if process.poll() is not None:
            raise AssertionError(f"router exited: {log.read_text()}")
        try:
            response = httpx.get(router.base + "/health", timeout=1)
        except httpx.HTTPError:
            return False
        if not ready:
            return True
        if response.status_code == 200:
            ready_workers.add(response.json()["pid"])
        return len(ready_workers) == workers

    try:
        wait_until(up, timeout=60, what="router start")
    except BaseException:
        router.kill_all()
        raise
    return router


# --- database outages -------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones
    refused) and restored on the same port: the database is unreachable, its data intact."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Outage:
    """Makes the test database unreachable for the router and brings it back, data intact.

    PostgreSQL: the router connects through a :class:`TcpProxy` that is cut and restored.
    SQLite: another connection holds an exclusive lock, so every router transaction fails
    with "database is locked" (the file cannot be "unreachable" for a process on this host)
    once it has waited ``LOCK_WAIT_MS`` for its turn: routers under test set that wait
    (``ROUTER_WRITE_LOCK_WAIT_MS``) rather than the default 20 s.
    """

    LOCK_WAIT_MS = 500

    def __init__(self, url: str) -> None:
        self.url = url
        self.router_url = url
        self._proxy: TcpProxy | None = None
        self._lock: sqlite3.Connection | None = None
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "postgresql":
            self._proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
            self._proxy.start()
            self.router_url = parsed.set(host="127.0.0.1", port=self._proxy.port).render_as_string(
                hide_password=False
            )
        self._path = parsed.database

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        else:
            assert self._path is not None
            self._lock = sqlite3.connect(self._path, timeout=10, isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.start()
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        elif self._lock is not None:
            self.end()
