from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import make_program


def test_create_get_update_partner(client: TestClient, session: Session) -> None:
    program = make_program(session)
    session.commit()
    response = client.post(
        "/v1/partners",
        json={
            "program_id": program.id,
            "name": "Ada",
            "email": " Ada@Example.COM ",
            "metadata": {"tier": "gold"},
        },
    )
    assert response.status_code == 201, response.text
    partner = response.json()
    assert partner["id"].startswith("ptn_")
    assert partner["email"] == "ada@example.com"
    assert partner["status"] == "active"
    assert partner["metadata"] == {"tier": "gold"}
    assert client.get(f"/v1/partners/{partner['id']}").json()["name"] == "Ada"
    revoked = client.patch(f"/v1/partners/{partner['id']}", json={"status": "revoked"})
    assert revoked.json()["status"] == "revoked"


def test_duplicate_partner_email_in_a_program_is_409(client: TestClient, session: Session) -> None:
    program = make_program(session)
    other = make_program(session, name="Other")
    session.commit()
    body = {"program_id": program.id, "name": "Ada", "email": "ada@example.com"}
    assert client.post("/v1/partners", json=body).status_code == 201
    again = client.post("/v1/partners", json={**body, "email": "ADA@example.com"})
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_partner_email"
    # The same email in another program is a different partner.
    assert client.post("/v1/partners", json={**body, "program_id": other.id}).status_code == 201


def test_list_partners_filters(client: TestClient, session: Session) -> None:
    program = make_program(session)
    other = make_program(session, name="Other")
    session.commit()
    for i, prog in enumerate([program, program, other]):
        client.post(
            "/v1/partners",
            json={"program_id": prog.id, "name": f"P{i}", "email": f"p{i}@x.example"},
        )
    listed = client.get("/v1/partners", params={"program_id": program.id}).json()["data"]
    assert len(listed) == 2
    by_email = client.get("/v1/partners", params={"email": "P2@x.example"}).json()["data"]
    assert [p["name"] for p in by_email] == ["P2"]


def test_partner_for_unknown_program_is_404(client: TestClient) -> None:
    response = client.post(
        "/v1/partners", json={"program_id": "prg_missing", "name": "A", "email": "a@b.example"}
    )
    assert response.status_code == 404
