import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import make_partner, make_program


@pytest.fixture
def partner_id(session: Session) -> str:
    partner = make_partner(session)
    session.commit()
    return partner.id


def test_create_link_with_generated_key(client: TestClient, partner_id: str) -> None:
    response = client.post("/v1/links", json={"partner_id": partner_id})
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["id"].startswith("lnk_")
    assert 3 <= len(link["key"]) <= 64
    assert link["destination_url"] is None
    assert link["archived"] is False


def test_create_link_with_key_and_destination(client: TestClient, partner_id: str) -> None:
    response = client.post(
        "/v1/links",
        json={
            "partner_id": partner_id,
            "key": "ada-summer",
            "destination_url": "https://shop.acme.example/sale?x=1#top",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["key"] == "ada-summer"


def test_duplicate_link_key_is_409(client: TestClient, partner_id: str) -> None:
    assert (
        client.post("/v1/links", json={"partner_id": partner_id, "key": "dup"}).status_code == 201
    )
    again = client.post("/v1/links", json={"partner_id": partner_id, "key": "dup"})
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_link_key"


@pytest.mark.parametrize(
    "destination",
    [
        "https://evil.example/",
        "https://acme.example.evil.example/",
        "javascript:alert(1)",
        "//evil.example/",
        "https://user:pw@acme.example/",
        "https://acme.example\\@evil.example/",
        "ftp://acme.example/",
        "https://evil.example\r\nLocation: x",
    ],
)
def test_destination_outside_allowed_domains_is_refused(
    client: TestClient, partner_id: str, destination: str
) -> None:
    response = client.post(
        "/v1/links", json={"partner_id": partner_id, "destination_url": destination}
    )
    assert response.status_code == 422, destination
    # A CR LF is refused before the URL is read at all (api/schemas.py: control_character).
    assert response.json()["code"] in {
        "destination_not_allowed",
        "invalid_url",
        "control_character",
    }


@pytest.mark.parametrize("key", ["ab", "a" * 65, "has space", "slash/key", "ümlaut", "health"])
def test_bad_link_keys_are_refused(client: TestClient, partner_id: str, key: str) -> None:
    response = client.post("/v1/links", json={"partner_id": partner_id, "key": key})
    assert response.status_code == 422


def test_update_and_archive_link(client: TestClient, partner_id: str) -> None:
    link = client.post("/v1/links", json={"partner_id": partner_id}).json()
    updated = client.patch(
        f"/v1/links/{link['id']}", json={"destination_url": "https://acme.example/new"}
    )
    assert updated.json()["destination_url"] == "https://acme.example/new"
    bad = client.patch(f"/v1/links/{link['id']}", json={"destination_url": "https://evil.example"})
    assert bad.status_code == 422
    assert client.post(f"/v1/links/{link['id']}/archive").json()["archived"] is True
    listed = client.get("/v1/links", params={"archived": "true"}).json()["data"]
    assert [item["id"] for item in listed] == [link["id"]]


def test_links_for_revoked_partner_are_refused(client: TestClient, session: Session) -> None:
    partner = make_partner(session, status="revoked")
    session.commit()
    response = client.post("/v1/links", json={"partner_id": partner.id})
    assert response.status_code == 409
    assert response.json()["code"] == "partner_revoked"


def test_list_links_by_partner(client: TestClient, session: Session) -> None:
    program = make_program(session)
    a = make_partner(session, program=program)
    b = make_partner(session, program=program)
    session.commit()
    for partner in (a, a, b):
        client.post("/v1/links", json={"partner_id": partner.id})
    listed = client.get("/v1/links", params={"partner_id": a.id}).json()["data"]
    assert len(listed) == 2 and {item["partner_id"] for item in listed} == {a.id}
