"""The router app in-process, against a real database (both backends): redirects, errors,
what a click stores, flags, the per-IP cap, HEAD, health, cache freshness, shutdown flush."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click
from openpartner.links.schemas import LinkCreate, LinkUpdate
from openpartner.links.service import create_link, update_link
from openpartner.programs.models import Program
from openpartner.programs.schemas import ProgramUpdate
from openpartner.programs.service import archive_program, update_program
from openpartner.router.app import RouterApp
from openpartner.secrets import keyed_hash
from tests.factories import ADMIN
from tests.router_support import (
    BROWSER,
    RouterDatabase,
    click_id_of,
    count_clicks,
    router_database,
    router_settings,
    seed,
    start,
    stored_clicks,
    wait_until,
    written,
)

SECRET = b"test-secret-current"


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture(scope="module")
def router(db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One router for the tests that need no special settings."""
    client, _ = start(db, tmp_path_factory.mktemp("router"))
    yield client
    client.__exit__(None, None, None)


def test_redirect_records_the_click(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router, destination_url="https://acme.example/pricing?plan=pro#faq")
    response = router.get(
        f"/{link.key}?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=t&utm_content=c",
        headers={
            "x-forwarded-for": "203.0.113.9",
            "referer": "https://blog.example/post",
        },
    )
    assert response.status_code == 302
    location = response.headers["location"]
    click_id = click_id_of(location)
    assert location == f"https://acme.example/pricing?plan=pro&cref={click_id}#faq"
    assert click_id.startswith("clk_") and len(click_id) == 30
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    click = written(db, click_id)[click_id]
    assert (click.link_id, click.partner_id, click.program_id) == (
        link.link_id,
        link.partner_id,
        link.program_id,
    )
    assert click.ip_hash == keyed_hash("203.0.113.9", purpose="ip", secret=SECRET)
    assert "203.0.113.9" not in str([getattr(click, c.key) for c in Click.__table__.columns])
    assert click.user_agent == BROWSER
    assert click.referer == "https://blog.example/post"
    assert click.landing_url == location
    assert (click.utm_source, click.utm_medium, click.utm_campaign) == ("news", "email", "spring")
    assert (click.utm_term, click.utm_content) == ("t", "c")
    assert click.source == "router" and click.country is None
    assert not click.flagged


def test_r_prefix_and_trailing_slash(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router)
    for path in (f"/r/{link.key}", f"/{link.key}/", f"/r/{link.key}/"):
        response = router.get(path)
        assert response.status_code == 302, path
        assert response.headers["location"].startswith("https://acme.example/welcome?cref=clk_")


def test_each_redirect_gets_a_new_unguessable_click_id(
    db: RouterDatabase, router: TestClient
) -> None:
    link = seed(db, router)
    ids = {click_id_of(router.get(f"/{link.key}").headers["location"]) for _ in range(20)}
    assert len(ids) == 20


def test_country_from_the_configured_header(db: RouterDatabase, tmp_path: Path) -> None:
    client, _ = start(db, tmp_path, router_country_header="CF-IPCountry")
    try:
        link = seed(db, client)
        good = click_id_of(
            client.get(f"/{link.key}", headers={"cf-ipcountry": "de"}).headers["location"]
        )
        bad = click_id_of(
            client.get(f"/{link.key}", headers={"cf-ipcountry": "T1"}).headers["location"]
        )
        rows = written(db, good, bad)
        assert rows[good].country == "DE" and rows[bad].country is None
    finally:
        client.__exit__(None, None, None)


def test_unknown_key_is_404(router: TestClient) -> None:
    response = router.get("/no-such-link")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


def gone(client: TestClient, key: str) -> bool:
    return client.head(f"/{key}").status_code == 410


def test_archived_link_and_archived_program_are_410(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router)
    other = seed(db, router)
    with Session(db.engine) as session, session.begin():
        update_link(session, ADMIN, link.link_id, LinkUpdate(archived=True))
        archive_program(session, ADMIN, other.program_id)
    for key in (link.key, other.key):
        wait_until(partial(gone, router, key), timeout=2, what=key)
        response = router.get(f"/{key}")
        assert response.status_code == 410 and "location" not in response.headers
    assert count_clicks(db.engine, link_id=link.link_id) == 0


def test_revoked_partner_still_redirects_but_the_click_is_flagged(
    db: RouterDatabase, router: TestClient
) -> None:
    link = seed(db, router, partner_status="revoked")
    response = router.get(f"/{link.key}")
    assert response.status_code == 302
    click_id = click_id_of(response.headers["location"])
    click = written(db, click_id)[click_id]
    assert click.revoked and click.flagged


def test_flags_are_computed_when_clicks_are_written(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router, program={"velocity_limit_per_minute": 2})
    bot = router.get(
        f"/{link.key}",
        headers={"user-agent": "Slackbot-LinkExpanding 1.0", "x-forwarded-for": "198.51.100.1"},
    )
    first = router.get(f"/{link.key}", headers={"x-forwarded-for": "198.51.100.2"})
    again = router.get(f"/{link.key}", headers={"x-forwarded-for": "198.51.100.2"})
    # Same IP, other browsers: not duplicates, but the third click from the IP this minute.
    third = router.get(
        f"/{link.key}", headers={"x-forwarded-for": "198.51.100.2", "user-agent": BROWSER + " 2"}
    )
    ids = [click_id_of(r.headers["location"]) for r in (bot, first, again, third)]
    rows = written(db, *ids)
    flags = [(rows[i].bot, rows[i].duplicate, rows[i].velocity) for i in ids]
    assert flags == [
        (True, False, False),
        (False, False, False),
        (False, True, False),
        (False, False, True),
    ]


def test_per_ip_cap_answers_429_with_retry_after(db: RouterDatabase, tmp_path: Path) -> None:
    client, _ = start(db, tmp_path, router_ip_rate_limit=3, router_ip_rate_window_seconds=60)
    try:
        link = seed(db, client)
        wait_until(
            lambda: (
                client.get(f"/{link.key}", headers={"x-forwarded-for": "192.0.2.99"}).status_code
                == 302
            ),
            timeout=2,
        )
        statuses = [
            client.get(f"/{link.key}", headers={"x-forwarded-for": "192.0.2.1"}).status_code
            for _ in range(4)
        ]
        assert statuses == [302, 302, 302, 429]
        limited = client.get(f"/{link.key}", headers={"x-forwarded-for": "192.0.2.1"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "location" not in limited.headers
        # Another client is not affected.
        assert (
            client.get(f"/{link.key}", headers={"x-forwarded-for": "192.0.2.2"}).status_code == 302
        )
    finally:
        client.__exit__(None, None, None)


def test_forwarded_for_is_only_believed_from_trusted_proxies(
    db: RouterDatabase, tmp_path: Path
) -> None:
    client, _ = start(db, tmp_path, router_trusted_proxies="10.0.0.1")
    try:
        link = seed(db, client)
        wait_until(lambda: client.get(f"/{link.key}").status_code == 302, timeout=2)
        response = client.get(f"/{link.key}", headers={"x-forwarded-for": "203.0.113.50"})
        click_id = click_id_of(response.headers["location"])
        click = written(db, click_id)[click_id]
        assert click.ip_hash == keyed_hash("testclient", purpose="ip", secret=SECRET)
    finally:
        client.__exit__(None, None, None)


def test_head_is_a_probe_not_a_click(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router, destination_url="https://acme.example/p?x=1#top")
    response = router.head(f"/{link.key}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://acme.example/p?x=1#top"
    assert router.head("/nope").status_code == 404
    router.get(f"/{link.key}")
    wait_until(lambda: count_clicks(db.engine, link_id=link.link_id) == 1)


def test_other_methods_are_405(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router)
    response = router.post(f"/{link.key}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_health_and_robots(router: TestClient) -> None:
    health = router.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["clicks_dropped"] == 0 and body["database_up"]
    for field in ("buffer_depth", "spool_bytes", "flush_ms_last", "clicks_written"):
        assert field in body
    robots = router.get("/robots.txt")
    assert robots.text == "User-agent: *\nDisallow: /\n"


def test_links_and_edits_through_the_services_reach_the_cache(
    db: RouterDatabase, router: TestClient
) -> None:
    seeded = seed(db, router)
    with Session(db.engine) as session, session.begin():
        link = create_link(
            session,
            ADMIN,
            LinkCreate(partner_id=seeded.partner_id, key="fresh-link", destination_url=None),
        )
        link_id = link.id
    wait_until(lambda: router.get("/fresh-link").status_code == 302, timeout=1)
    with Session(db.engine) as session, session.begin():
        update_program(
            session,
            ADMIN,
            seeded.program_id,
            ProgramUpdate(default_destination_url="https://acme.example/new-home"),
        )
    wait_until(
        lambda: (
            router.get("/fresh-link")
            .headers["location"]
            .startswith("https://acme.example/new-home?cref=")
        ),
        timeout=1,
    )
    with Session(db.engine) as session, session.begin():
        update_link(
            session, ADMIN, link_id, LinkUpdate(destination_url="https://shop.acme.example/x")
        )
    wait_until(
        lambda: (
            router.get("/fresh-link")
            .headers["location"]
            .startswith("https://shop.acme.example/x?cref=")
        ),
        timeout=1,
    )


def test_narrowed_allowed_domains_fall_back_to_the_default_destination(
    db: RouterDatabase, router: TestClient
) -> None:
    link = seed(db, router, destination_url="https://shop.acme.example/deal")
    assert router.get(f"/{link.key}").headers["location"].startswith("https://shop.acme.example/")
    with Session(db.engine) as session, session.begin():
        program = session.get_one(Program, link.program_id)
        update_program(session, ADMIN, program.id, ProgramUpdate(allowed_domains=["acme.example"]))
    wait_until(
        lambda: (
            router.get(f"/{link.key}")
            .headers["location"]
            .startswith("https://acme.example/welcome?cref=")
        ),
        timeout=1,
    )


def test_clean_shutdown_writes_every_click(db: RouterDatabase, tmp_path: Path) -> None:
    client, app = start(db, tmp_path, router_flush_interval_ms=100)
    link = seed(db, client)
    wait_until(lambda: client.get(f"/{link.key}").status_code == 302, timeout=2)
    ids = [click_id_of(client.get(f"/{link.key}").headers["location"]) for _ in range(300)]
    client.__exit__(None, None, None)
    assert len(stored_clicks(db.engine, ids)) == 300
    assert app.stats.clicks_dropped == 0


def test_unreachable_database_at_start_answers_503_until_links_load(tmp_path: Path) -> None:
    app = RouterApp(
        router_settings("postgresql+psycopg://postgres@127.0.0.1:9/none", tmp_path / "data")
    )
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/anything").status_code == 503
        assert client.get("/anything").headers["retry-after"] == "1"
        assert client.get("/health").json()["status"] == "starting"
