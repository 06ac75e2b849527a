"""The router's cookie and its refusal to redirect anywhere else (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.router_support import (
    RouterDatabase,
    click_id_of,
    router_database,
    seed,
    start,
    wait_until,
)


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture(scope="module")
def router(db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    client, _ = start(db, tmp_path_factory.mktemp("router"))
    yield client
    client.__exit__(None, None, None)


def test_cookie_on_a_subdomain_of_the_cookie_domain(db: RouterDatabase, router: TestClient) -> None:
    link = seed(db, router, program={"cookie_domain": "acme.example", "cookie_lifetime_days": 30})
    response = router.get(f"/{link.key}", headers={"host": "go.acme.example"})
    click_id = click_id_of(response.headers["location"])
    assert response.headers["set-cookie"] == (
        f"_cref={click_id}; Domain=acme.example; Path=/; Max-Age=2592000; Secure; HttpOnly; "
        "SameSite=Lax"
    )


@pytest.mark.parametrize(
    ("host", "cookie_domain"),
    [
        ("go.other.example", "acme.example"),  # not under the cookie domain
        ("evilacme.example", "acme.example"),  # suffix but not a subdomain
        ("go.acme.example", None),  # the program sets no cookie
    ],
)
def test_no_cookie_outside_the_cookie_domain(
    db: RouterDatabase, router: TestClient, host: str, cookie_domain: str | None
) -> None:
    link = seed(db, router, program={"cookie_domain": cookie_domain})
    response = router.get(f"/{link.key}", headers={"host": host})
    assert response.status_code == 302
    assert "set-cookie" not in response.headers


def test_custom_cookie_name_click_param_and_400_day_cap(
    db: RouterDatabase, router: TestClient
) -> None:
    link = seed(
        db,
        router,
        program={
            "cookie_domain": "acme.example",
            "cookie_name": "partner_click",
            "click_param": "via_click",
            "cookie_lifetime_days": 400,
        },
    )
    response = router.get(f"/{link.key}", headers={"host": "acme.example:443"})
    click_id = click_id_of(response.headers["location"], "via_click")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"partner_click={click_id}; Domain=acme.example;")
    assert "Max-Age=34560000" in cookie


def test_secure_is_dropped_only_on_localhost_when_explicitly_allowed(
    db: RouterDatabase, tmp_path: Path, router: TestClient
) -> None:
    link = seed(db, router, program={"cookie_domain": "shop.localhost"})
    # Default: Secure even on localhost.
    assert (
        "; Secure"
        in router.get(f"/{link.key}", headers={"host": "go.shop.localhost"}).headers["set-cookie"]
    )
    client, _ = start(db, tmp_path, router_insecure_localhost_cookies=True)
    try:
        cookie = client.get(f"/{link.key}", headers={"host": "go.shop.localhost:8001"}).headers[
            "set-cookie"
        ]
        assert "Secure" not in cookie and "Domain=shop.localhost" in cookie
        other = seed(db, router, program={"cookie_domain": "acme.example"})
        wait_until(lambda: client.get(f"/{other.key}").status_code == 302, timeout=2)
        cookie = client.get(f"/{other.key}", headers={"host": "go.acme.example"}).headers[
            "set-cookie"
        ]
        assert "; Secure" in cookie
    finally:
        client.__exit__(None, None, None)


EVIL = "evil.example"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/{key}?url=https://evil.example/", {}),
        ("/{key}?cref=https://evil.example/&next=//evil.example", {}),
        ("/{key}?redirect=%2F%2Fevil.example", {}),
        ("/{key}", {"host": "evil.example"}),
        ("/{key}", {"x-forwarded-host": "evil.example", "forwarded": "host=evil.example"}),
        ("/{key}", {"referer": "https://evil.example/"}),
        ("//evil.example", {}),
        ("//evil.example/{key}", {}),
        ("/r//evil.example", {}),
        ("/%2F%2Fevil.example", {}),
        ("/https://evil.example", {}),
        ("/%5Cevil.example", {}),
        ("/{key}/..%2F..%2Fevil.example", {}),
        ("/{key}%0d%0aLocation:%20https://evil.example", {}),
        ("/{key}@evil.example", {}),
    ],
)
def test_no_open_redirect_through_any_input(
    db: RouterDatabase, router: TestClient, path: str, headers: dict[str, str]
) -> None:
    link = seed(db, router, destination_url="https://acme.example/p?x=1")
    response = router.get(path.format(key=link.key), headers=headers)
    location = response.headers.get("location")
    if location is None:
        assert response.status_code == 404
        return
    assert response.status_code == 302
    assert location.startswith("https://acme.example/p?x=1&cref=clk_")
    assert EVIL not in location and "\r" not in location and "\n" not in location
