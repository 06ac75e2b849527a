"""Real router processes (Granian workers) against a real database, both backends: cache
invalidation across processes, flags across processes, the spool through a database outage,
clean shutdown, a crashed worker, the global per-IP cap through Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from openpartner.api.app import create_app
from openpartner.clicks.models import Click
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.router_support import (
    BROWSER,
    Outage,
    RouterDatabase,
    RouterProcess,
    click_id_of,
    count_clicks,
    free_port,
    router_database,
    seed_link,
    start_router,
    stored_clicks,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture
def routers() -> Iterator[list[RouterProcess]]:
    started: list[RouterProcess] = []
    yield started
    for router in started:
        router.kill_all()


@pytest.fixture(scope="module")
def api(db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("api"),
        database_url=db.url,
        admin_api_key=ADMIN_TOKEN,
        secret_key="test-secret-current",
    )
    app = create_app(settings, sessionmaker(bind=db.engine, expire_on_commit=False))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


def get(router: RouterProcess, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    return httpx.request(method, router.base + path, headers={"user-agent": BROWSER, **headers})


def redirects(router: RouterProcess, path: str) -> bool:
    try:
        return get(router, path, method="HEAD").status_code == 302
    except httpx.HTTPError:
        return False


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def pair(
    db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[RouterProcess]]:
    """Two separate routers (as on two hosts) with the default poll interval (250 ms)."""
    tmp = tmp_path_factory.mktemp("pair")
    started = [start_router(db.url, tmp / name, ROUTER_CACHE_POLL_MS="250") for name in "ab"]
    yield started
    for router in started:
        router.kill_all()


def test_api_edits_reach_every_router_process_within_a_second(
    api: TestClient, pair: list[RouterProcess]
) -> None:
    routers = pair
    program = api.post(
        "/v1/programs",
        json={
            "name": "Acme",
            "currency": "USD",
            "default_destination_url": "https://acme.example/",
            "allowed_domains": ["acme.example", "*.acme.example"],
        },
    ).json()
    partner = api.post(
        "/v1/partners",
        json={"program_id": program["id"], "name": "Ada", "email": "ada@partner.example"},
    ).json()

    def visible_everywhere(check: Any) -> float:
        started = time.monotonic()
        for router in routers:
            wait_until(partial(check, router), timeout=1.0, what="change on every router")
        return time.monotonic() - started

    link = api.post(
        "/v1/links",
        json={
            "partner_id": partner["id"],
            "key": "ada-x",
            "destination_url": "https://acme.example/a",
        },
    ).json()
    assert (
        visible_everywhere(
            lambda r: (
                get(r, "/ada-x").headers.get("location", "").startswith("https://acme.example/a?")
            )
        )
        < 1.0
    )
    api.patch(f"/v1/links/{link['id']}", json={"destination_url": "https://shop.acme.example/b"})
    assert (
        visible_everywhere(
            lambda r: (
                get(r, "/ada-x")
                .headers.get("location", "")
                .startswith("https://shop.acme.example/b?")
            )
        )
        < 1.0
    )
    api.post(f"/v1/programs/{program['id']}/archive")
    assert visible_everywhere(lambda r: get(r, "/ada-x").status_code == 410) < 1.0


def test_flags_hold_across_router_processes(db: RouterDatabase, pair: list[RouterProcess]) -> None:
    link = seed_link(db.engine, program={"velocity_limit_per_minute": 3})
    a, b = pair
    for router in pair:
        wait_until(partial(redirects, router, f"/{link.key}"))
    visitor = {"x-forwarded-for": "203.0.113.7"}

    def click(router: RouterProcess, **headers: str) -> str:
        """A click, once it is written (so the next one, on the other process, sees it)."""
        click_id = click_id_of(
            get(router, f"/{link.key}", **visitor, **headers).headers["location"]
        )
        wait_until(lambda: stored_clicks(db.engine, [click_id]), what="click written")
        return click_id

    ids = [
        click(a),
        click(b),  # the same visitor through the other process: a duplicate
        click(a, **{"user-agent": "Mozilla/5.0 Firefox/126"}),
        click(b, **{"user-agent": "Mozilla/5.0 Chrome/125"}),  # the 4th from this IP: velocity
    ]
    rows = stored_clicks(db.engine, ids)
    assert [rows[i].duplicate for i in ids] == [False, True, False, False]
    assert [rows[i].velocity for i in ids] == [False, False, False, True]


def test_database_outage_redirects_keep_working_and_every_click_lands_once(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    outage = Outage(db.url)
    try:
        router = start_router(
            outage.router_url, tmp_path / "r", ROUTER_WRITE_LOCK_WAIT_MS=str(Outage.LOCK_WAIT_MS)
        )
        routers.append(router)
        before = [click_id_of(get(router, f"/{link.key}").headers["location"]) for _ in range(5)]
        wait_until(lambda: len(stored_clicks(db.engine, before)) == 5)
        outage.begin()
        during = []
        for i in range(60):
            response = get(router, f"/{link.key}", **{"x-forwarded-for": f"198.51.100.{i}"})
            assert response.status_code == 302
            during.append(click_id_of(response.headers["location"]))
        wait_until(lambda: router.health()["clicks_spooled"] >= 60, timeout=15, what="spooled")
        assert router.health()["database_up"] is False
        assert any((tmp_path / "r" / "spool").iterdir())
        outage.end()
        after = [click_id_of(get(router, f"/{link.key}").headers["location"]) for _ in range(5)]
        expected = set(before + during + after)
        wait_until(
            lambda: count_clicks(db.engine, link_id=link.link_id) >= len(expected),
            timeout=20,
            what="replay",
        )
        time.sleep(0.3)  # anything written twice would show up now
        with db.engine.connect() as conn:
            ids = conn.scalars(sa.select(Click.id).where(Click.link_id == link.link_id)).all()
        assert sorted(ids) == sorted(expected)  # every click, exactly once
        health = router.health()
        assert health["database_up"] and health["clicks_dropped"] == 0
        assert health["spool_segments"] == 0
        assert router.stop() == 0
    finally:
        outage.close()


def test_clean_shutdown_of_two_workers_loses_no_click(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    router = start_router(db.url, tmp_path / "r", workers=2, ROUTER_FLUSH_INTERVAL_MS="100")
    routers.append(router)
    wait_until(lambda: get(router, f"/{link.key}").status_code == 302)
    with httpx.Client(base_url=router.base, headers={"user-agent": BROWSER}) as client:
        ids = [click_id_of(client.get(f"/{link.key}").headers["location"]) for _ in range(400)]
    assert router.stop() == 0
    assert len(stored_clicks(db.engine, ids)) == 400


def test_a_crashed_worker_loses_at_most_its_current_flush_interval(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    router = start_router(db.url, tmp_path / "r", ROUTER_FLUSH_INTERVAL_MS="50")
    routers.append(router)
    ids = [click_id_of(get(router, f"/{link.key}").headers["location"]) for _ in range(100)]
    time.sleep(0.3)  # several flush intervals
    (worker,) = children(router.process.pid)
    os.kill(worker, signal.SIGKILL)
    assert len(stored_clicks(db.engine, ids)) == 100
    # Granian starts a new worker; the router keeps answering.
    wait_until(partial(redirects, router, f"/{link.key}"), timeout=30)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _redis_up(port), timeout=10, what="redis")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _redis_up(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_per_ip_cap_is_global_across_processes_with_redis(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path, redis_url: str
) -> None:
    link = seed_link(db.engine)
    for name in ("a", "b"):
        routers.append(
            start_router(
                db.url,
                tmp_path / name,
                REDIS_URL=redis_url,
                ROUTER_IP_RATE_LIMIT="3",
                ROUTER_IP_RATE_WINDOW_SECONDS="3600",
            )
        )
    a, b = routers
    client = {"x-forwarded-for": "192.0.2.44"}
    statuses = [get(r, f"/{link.key}", **client).status_code for r in (a, b, a, b)]
    assert statuses == [302, 302, 302, 429]
    assert get(a, f"/{link.key}", **client).headers["retry-after"].isdigit()
    assert get(b, f"/{link.key}", **{"x-forwarded-for": "192.0.2.45"}).status_code == 302
