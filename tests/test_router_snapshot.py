"""A router started while the database is unreachable serves the last link table it saved, spools
its clicks, and switches to the live table when the database returns: real router processes,
both backends (``tests/router_support.py`` makes the outage)."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from openpartner.clicks.models import Click
from openpartner.router import snapshot
from tests.router_support import (
    BROWSER,
    Outage,
    RouterDatabase,
    RouterProcess,
    click_id_of,
    count_clicks,
    router_database,
    seed_link,
    start_router,
    wait_until,
)


@pytest.fixture
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture
def routers() -> Iterator[list[RouterProcess]]:
    started: list[RouterProcess] = []
    yield started
    for router in started:
        router.kill_all()


def test_snapshot_is_written_whole_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / snapshot.FILE_NAME
    program = {"id": "prg_1", "allowed_domains": ["acme.example"], "archived": False}
    snapshot.write(path, [program], [{"id": "lnk_1", "key": "k1", "program_id": "prg_1"}])
    snapshot.write(path, [program], [{"id": "lnk_2", "key": "k2", "program_id": "prg_1"}])
    assert [p.name for p in path.parent.iterdir()] == [snapshot.FILE_NAME]  # no temporary left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = snapshot.read(path)
    assert saved is not None and [link.key for link in saved.links] == ["k2"]
    assert saved.programs[0].allowed_domains == ["acme.example"]
    path.write_text(json.dumps({"format": 0}))
    assert snapshot.read(path) is None  # a format this version does not read is no snapshot
    assert snapshot.read(tmp_path / "absent.json") is None


def get(router: RouterProcess, path: str, **headers: str) -> httpx.Response:
    return httpx.get(router.base + path, headers={"user-agent": BROWSER, **headers})


@pytest.mark.slow
def test_router_started_during_an_outage_redirects_from_its_snapshot_and_clicks_land_once(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    data = tmp_path / "r"
    outage = Outage(db.url)
    wait = str(Outage.LOCK_WAIT_MS)
    try:
        first = start_router(outage.router_url, data, ROUTER_WRITE_LOCK_WAIT_MS=wait)
        routers.append(first)
        assert first.health()["links_source"] == "database"
        saved = data / snapshot.FILE_NAME
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert first.stop() == 0

        outage.begin()
        second = start_router(outage.router_url, data, ROUTER_WRITE_LOCK_WAIT_MS=wait)
        routers.append(second)
        health = second.health()
        assert (health["status"], health["links_source"], health["links"]) == ("ok", "snapshot", 1)
        during = []
        for i in range(20):
            response = get(second, f"/{link.key}", **{"x-forwarded-for": f"198.51.100.{i}"})
            assert response.status_code == 302
            assert response.headers["location"].startswith(link.destination)
            during.append(click_id_of(response.headers["location"]))
        assert all(click.startswith("clk_") for click in during) and len(set(during)) == 20
        assert get(second, "/no-such-link").status_code == 404
        wait_until(lambda: second.health()["clicks_spooled"] >= 20, timeout=15, what="spooled")
        assert second.health()["database_up"] is False

        outage.end()
        wait_until(
            lambda: second.health()["links_source"] == "database", timeout=20, what="live links"
        )
        after = [click_id_of(get(second, f"/{link.key}").headers["location"]) for _ in range(3)]
        expected = set(during + after)
        wait_until(
            lambda: count_clicks(db.engine, link_id=link.link_id) >= len(expected),
            timeout=20,
            what="replay",
        )
        time.sleep(0.3)  # anything written twice would show up now
        with db.engine.connect() as conn:
            ids = conn.scalars(sa.select(Click.id).where(Click.link_id == link.link_id)).all()
        assert sorted(ids) == sorted(expected)  # every click, exactly once
        health = second.health()
        assert health["database_up"] and health["clicks_dropped"] == 0
        assert health["spool_segments"] == 0
        assert second.stop() == 0
    finally:
        outage.close()


@pytest.mark.slow
def test_without_a_snapshot_a_router_started_during_an_outage_is_still_starting(
    db: RouterDatabase, routers: list[RouterProcess], tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    outage = Outage(db.url)
    try:
        outage.begin()
        router = start_router(
            outage.router_url,
            tmp_path / "r",
            ready=False,
            ROUTER_WRITE_LOCK_WAIT_MS=str(Outage.LOCK_WAIT_MS),
        )
        routers.append(router)
        time.sleep(1.5)  # a load attempt or two
        assert get(router, f"/{link.key}").status_code == 503
        assert router.health()["links_source"] == "none"
        outage.end()
        wait_until(lambda: get(router, f"/{link.key}").status_code == 302, timeout=20)
    finally:
        outage.close()
