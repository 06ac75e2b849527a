"""POST /v1/clicks: the no-redirect flow (both databases)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click
from openpartner.links.models import Link
from openpartner.secrets import keyed_hash
from tests.factories import make_link, make_partner, make_program

KeyFor = Callable[..., str]
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def link(session: Session) -> Link:
    program = make_program(
        session,
        allowed_origins=["https://shop.acme.example"],
        cookie_domain="acme.example",
        cookie_lifetime_days=30,
    )
    link = make_link(session, partner=make_partner(session, program=program), key="ada-via")
    session.commit()
    return link


def stored(session: Session, click_id: str) -> Click:
    return session.scalars(sa.select(Click).where(Click.id == click_id)).one()


def test_server_reports_a_visit_with_a_secret_key(
    anon: TestClient, session: Session, key_for: KeyFor, link: Link
) -> None:
    token = key_for("events:write", program_id=link.program_id)
    response = anon.post(
        "/v1/clicks",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "link_key": "ada-via",
            "landing_url": "https://shop.acme.example/?via=ada-via&utm_source=podcast",
            "referer": "https://podcast.example/ep1",
            "ip": "203.0.113.20",
            "user_agent": UA,
            "country": "fr",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    click_id = body["click_id"]
    assert click_id.startswith("clk_")
    assert body["cookie"] == {
        "name": "_cref",
        "value": click_id,
        "domain": "acme.example",
        "path": "/",
        "max_age": 30 * 86400,
        "secure": True,
        "http_only": True,
        "same_site": "Lax",
    }
    assert body["set_cookie"] == (
        f"_cref={click_id}; Domain=acme.example; Path=/; Max-Age=2592000; Secure; HttpOnly; "
        "SameSite=Lax"
    )
    click = stored(session, click_id)
    assert click.source == "api" and click.link_id == link.id
    assert click.ip_hash == keyed_hash("203.0.113.20", purpose="ip", secret=b"test-secret-current")
    assert (click.user_agent, click.country, click.utm_source) == (UA, "FR", "podcast")
    assert click.landing_url == "https://shop.acme.example/?via=ada-via&utm_source=podcast"
    assert not click.flagged


def test_the_same_visitor_again_is_a_duplicate(
    anon: TestClient, session: Session, key_for: KeyFor, link: Link
) -> None:
    token = key_for("events:write")
    visit = {"link_key": "ada-via", "ip": "203.0.113.21", "user_agent": UA}
    ids = [
        anon.post("/v1/clicks", headers={"X-API-Key": token}, json=visit).json()["click_id"]
        for _ in range(2)
    ]
    assert [stored(session, i).duplicate for i in ids] == [False, True]


def test_browser_reports_a_visit_with_a_publishable_key_from_an_allowed_origin(
    anon: TestClient, session: Session, key_for: KeyFor, link: Link
) -> None:
    token = key_for("visitors:write", program_id=link.program_id, kind="publishable")
    response = anon.post(
        "/v1/clicks",
        headers={
            "Authorization": f"Bearer {token}",
            "Origin": "https://shop.acme.example",
            "User-Agent": UA,
        },
        json={"link_key": "ada-via", "landing_url": "https://shop.acme.example/?via=ada-via"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == "https://shop.acme.example"
    click = stored(session, response.json()["click_id"])
    assert click.user_agent == UA
    assert click.ip_hash == keyed_hash("testclient", purpose="ip", secret=b"test-secret-current")


@pytest.mark.parametrize(
    "origin", [None, "https://evil.example", "https://shop.acme.example.evil.example", "null"]
)
def test_publishable_key_from_another_origin_is_refused(
    anon: TestClient, key_for: KeyFor, link: Link, origin: str | None
) -> None:
    token = key_for("visitors:write", program_id=link.program_id, kind="publishable")
    headers = {"Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    response = anon.post("/v1/clicks", headers=headers, json={"link_key": "ada-via"})
    assert response.status_code == 403
    assert response.json()["code"] == "origin_not_allowed"


def test_publishable_key_may_not_claim_a_visitor_ip(
    anon: TestClient, key_for: KeyFor, link: Link
) -> None:
    token = key_for("visitors:write", program_id=link.program_id, kind="publishable")
    response = anon.post(
        "/v1/clicks",
        headers={"Authorization": f"Bearer {token}", "Origin": "https://shop.acme.example"},
        json={"link_key": "ada-via", "ip": "198.51.100.1"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "visitor_fields_server_only"


def test_keys_of_another_program_do_not_see_the_link(
    anon: TestClient, session: Session, key_for: KeyFor, link: Link
) -> None:
    other = make_program(session, allowed_origins=["https://shop.acme.example"])
    session.commit()
    for kind in ("secret", "publishable"):
        token = key_for("visitors:write", program_id=other.id, kind=kind)
        response = anon.post(
            "/v1/clicks",
            headers={"Authorization": f"Bearer {token}", "Origin": "https://shop.acme.example"},
            json={"link_key": "ada-via", "ip": "198.51.100.1"}
            if kind == "secret"
            else {"link_key": "ada-via"},
        )
        assert response.status_code == 404, kind


def test_scope_unknown_and_archived_links(
    client: TestClient, anon: TestClient, key_for: KeyFor, link: Link
) -> None:
    def post(token: str, key: str = "ada-via") -> dict[str, object]:
        response = anon.post("/v1/clicks", headers={"X-API-Key": token}, json={"link_key": key})
        return {"status": response.status_code, **response.json()}

    assert post(key_for("links:read"))["code"] == "missing_scope"
    token = key_for("events:write")
    assert post(token, "nope-x")["status"] == 404
    client.post(f"/v1/links/{link.id}/archive")
    assert post(token)["code"] == "link_archived"
    assert post(token)["status"] == 410


@pytest.mark.parametrize(
    "body",
    [
        {"link_key": "ada-via", "ip": "not-an-ip"},
        {"link_key": "a/b"},
        {"link_key": "ada-via", "country": "FRA"},
        {"link_key": "ada-via", "extra": 1},
        {},
    ],
)
def test_bad_bodies_are_422(
    anon: TestClient, key_for: KeyFor, link: Link, body: dict[str, object]
) -> None:
    token = key_for("events:write")
    response = anon.post("/v1/clicks", headers={"X-API-Key": token}, json=body)
    assert response.status_code == 422


def test_preflight_is_answered_for_an_origin_a_program_allows(anon: TestClient, link: Link) -> None:
    response = anon.options(
        "/v1/clicks",
        headers={
            "Origin": "https://shop.acme.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.acme.example"
    assert "authorization" in response.headers["access-control-allow-headers"]


def test_preflight_from_an_origin_no_program_allows_is_refused(
    anon: TestClient, link: Link
) -> None:
    response = anon.options(
        "/v1/clicks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers
