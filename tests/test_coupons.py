from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import make_partner, make_program


def test_sale_with_a_partner_code_is_attributed_without_a_click(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    partner = make_partner(session, program=program)
    session.commit()
    code = client.post("/v1/promotion-codes", json={"partner_id": partner.id, "code": "ada20"})
    assert code.status_code == 201, code.text
    assert code.json()["code"] == "ADA20"
    dup = client.post("/v1/promotion-codes", json={"partner_id": partner.id, "code": "ADA20"})
    assert dup.status_code == 409
    sale = client.post(
        "/v1/events",
        json={
            "program_id": program.id,
            "type": "sale",
            "amount": 2000,
            "promotion_code": "Ada20",
            "external_id": "o1",
        },
    ).json()
    assert sale["attributed_to"] == [{"partner_id": partner.id, "amount": 2000, "currency": "USD"}]
    attribution = client.get("/v1/events", params={"type": "sale"}).json()["data"]
    assert attribution[0]["promotion_code"] == "ADA20"


def test_unknown_code_attributes_nothing(client: TestClient, session: Session) -> None:
    program = make_program(session)
    session.commit()
    sale = client.post(
        "/v1/events",
        json={
            "program_id": program.id,
            "type": "sale",
            "amount": 2000,
            "promotion_code": "NOPE",
            "external_id": "o1",
        },
    ).json()
    assert sale["attributed_to"] == []
