"""The merchant-side middleware (ASGI and WSGI) against a real OpenPartner API on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.service import create_key
from openpartner.api.app import create_app
from openpartner.integrations.web import OpenPartnerASGI, OpenPartnerWSGI, Tracking
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.router_support import (
    BROWSER,
    RouterDatabase,
    free_port,
    router_database,
    seed_link,
    stored_clicks,
    wait_until,
)

CLICK = "clk_01JD3ABCDEFGHJKMNPQRSTVWXY"


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture(scope="module")
def api_url(db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real API, served over HTTP on loopback."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("api"),
        database_url=db.url,
        admin_api_key=ADMIN_TOKEN,
        secret_key="test-secret-current",
    )
    app = create_app(settings, sessionmaker(bind=db.engine, expire_on_commit=False))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10, what="api")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def tracking(db: RouterDatabase, api_url: str) -> Tracking:
    with Session(db.engine) as session, session.begin():
        token = create_key(session, kind="secret", scopes=["events:write"]).token
    return Tracking(api_url=api_url, api_key=token, cookie_domain="acme.example", cookie_days=30)


async def landing_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
    )
    await send({"type": "http.response.body", "body": b"<h1>Welcome</h1>"})


def landing_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<h1>Welcome</h1>"]


def asgi_get(app: OpenPartnerASGI, url: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.30", 5555))
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="https://shop.acme.example"
            ) as client:
                return await client.get(url, headers={"user-agent": BROWSER, **headers})
        finally:
            await app.aclose()

    return asyncio.run(go())


def test_asgi_via_landing_registers_the_click_and_sets_the_cookie(
    db: RouterDatabase, tracking: Tracking
) -> None:
    link = seed_link(
        db.engine, program={"cookie_domain": "acme.example", "cookie_lifetime_days": 45}
    )
    app = OpenPartnerASGI(landing_asgi, tracking)
    response = asgi_get(app, f"/spring?via={link.key}&utm_source=newsletter")
    assert response.status_code == 200 and response.text == "<h1>Welcome</h1>"
    cookie = response.headers["set-cookie"]
    click_id = cookie.split(";")[0].split("=")[1]
    assert cookie == (
        f"_cref={click_id}; Domain=acme.example; Path=/; Max-Age=3888000; Secure; HttpOnly; "
        "SameSite=Lax"
    )
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    click = stored_clicks(db.engine, [click_id])[click_id]
    assert click.source == "api" and click.link_id == link.link_id
    assert (
        click.landing_url
        == f"https://shop.acme.example/spring?via={link.key}&utm_source=newsletter"
    )
    assert click.utm_source == "newsletter" and click.user_agent == BROWSER


def test_wsgi_via_landing_registers_the_click_and_sets_the_cookie(
    db: RouterDatabase, tracking: Tracking
) -> None:
    link = seed_link(db.engine, program={"cookie_domain": "acme.example"})
    app = OpenPartnerWSGI(landing_wsgi, tracking)
    transport = httpx.WSGITransport(app=app, remote_addr="203.0.113.31")
    with httpx.Client(transport=transport, base_url="https://shop.acme.example") as client:
        response = client.get(f"/?via={link.key}", headers={"user-agent": BROWSER})
    app.close()
    assert response.status_code == 200
    click_id = response.headers["set-cookie"].split(";")[0].split("=")[1]
    assert "Domain=acme.example" in response.headers["set-cookie"]
    click = stored_clicks(db.engine, [click_id])[click_id]
    assert (
        click.link_id == link.link_id
        and click.landing_url == f"https://shop.acme.example/?via={link.key}"
    )


def test_redirect_flow_landing_gets_the_cookie_from_the_site_itself(tracking: Tracking) -> None:
    for app in (OpenPartnerASGI(landing_asgi, tracking),):
        response = asgi_get(app, f"/pricing?plan=pro&cref={CLICK}")
        assert response.headers["set-cookie"] == (
            f"_cref={CLICK}; Domain=acme.example; Path=/; Max-Age=2592000; Secure; HttpOnly; "
            "SameSite=Lax"
        )
    wsgi = OpenPartnerWSGI(landing_wsgi, tracking)
    with httpx.Client(
        transport=httpx.WSGITransport(app=wsgi), base_url="https://shop.acme.example"
    ) as client:
        assert client.get(f"/?cref={CLICK}").headers["set-cookie"].startswith(f"_cref={CLICK};")
    wsgi.close()


@pytest.mark.parametrize(
    "query",
    ["", "?cref=clk_forged%3B%20Domain%3Devil.example", "?via=a%20b", "?cref=../../x", "?via=ab"],
)
def test_no_cookie_without_a_valid_link_key_or_click_id(tracking: Tracking, query: str) -> None:
    response = asgi_get(OpenPartnerASGI(landing_asgi, tracking), f"/{query}")
    assert response.status_code == 200 and "set-cookie" not in response.headers


def test_an_unreachable_or_refusing_api_never_breaks_the_page(
    db: RouterDatabase, tracking: Tracking
) -> None:
    down = Tracking(api_url=f"http://127.0.0.1:{free_port()}", api_key="op_sk_x", timeout=0.5)
    response = asgi_get(OpenPartnerASGI(landing_asgi, down), "/?via=whatever")
    assert response.status_code == 200 and "set-cookie" not in response.headers
    unknown = asgi_get(OpenPartnerASGI(landing_asgi, tracking), "/?via=no-such-key")
    assert unknown.status_code == 200 and "set-cookie" not in unknown.headers
    wsgi = OpenPartnerWSGI(landing_wsgi, down)
    with httpx.Client(
        transport=httpx.WSGITransport(app=wsgi), base_url="https://shop.acme.example"
    ) as client:
        response = client.get("/?via=whatever")
    wsgi.close()
    assert response.status_code == 200 and "set-cookie" not in response.headers


def test_insecure_development_mode_drops_secure(
    db: RouterDatabase, tracking: Tracking, tmp_path: Path
) -> None:
    link = seed_link(db.engine)
    local = Tracking(api_url=tracking.api_url, api_key=tracking.api_key, secure=False)
    response = asgi_get(OpenPartnerASGI(landing_asgi, local), f"/?via={link.key}")
    assert "Secure" not in response.headers["set-cookie"]
