import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.core.ids import new_id
from openpartner.identity.models import IdentityEdge
from openpartner.identity.service import BindResult, bind, clicks_of_customer, email_hash
from tests.conftest import create_test_database
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import scratch_database

KeyFor = Callable[..., str]


@pytest.fixture
def setup(session: Session) -> dict[str, str]:
    program = make_program(session, allowed_origins=["https://shop.acme.example"])
    link = make_link(session, partner=make_partner(session, program=program))
    click = make_click(session, link=link)
    session.commit()
    return {"program": program.id, "click": click.id, "partner": link.partner_id}


def test_secret_key_binds_a_click_to_a_customer(
    anon: TestClient, key_for: KeyFor, setup: dict[str, str], session: Session
) -> None:
    token = key_for("events:write", program_id=setup["program"])
    response = anon.post(
        "/v1/identify",
        json={"click_id": setup["click"], "customer_id": "user_42", "email": " Ada@Example.com "},
        headers={"X-API-Key": token},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "customer_id": "user_42",
        "new_binding": True,
        "attributed_events": 0,
        "conflicts": [],
    }
    edges = session.scalars(sa.select(IdentityEdge)).all()
    hashes = {e.email_hash for e in edges if e.email_hash}
    assert hashes == {email_hash("ada@example.com")}
    assert all("ada" not in (e.email_hash or "") for e in edges)  # stored only as an HMAC


def test_publishable_key_needs_an_allowed_origin(
    anon: TestClient, key_for: KeyFor, setup: dict[str, str]
) -> None:
    token = key_for("visitors:write", program_id=setup["program"], kind="publishable")
    body = {"click_id": setup["click"], "customer_id": "user_1"}
    wrong = anon.post(
        "/v1/identify", json=body, headers={"X-API-Key": token, "Origin": "https://evil.example"}
    )
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "origin_not_allowed"
    missing = anon.post("/v1/identify", json=body, headers={"X-API-Key": token})
    assert missing.status_code == 403
    ok = anon.post(
        "/v1/identify",
        json=body,
        headers={"X-API-Key": token, "Origin": "https://shop.acme.example"},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["new_binding"] is True


def test_identify_needs_events_write(
    anon: TestClient, key_for: KeyFor, setup: dict[str, str]
) -> None:
    token = key_for("links:read", program_id=setup["program"])
    response = anon.post(
        "/v1/identify",
        json={"click_id": setup["click"], "customer_id": "u"},
        headers={"X-API-Key": token},
    )
    assert response.status_code == 403
    assert (
        anon.post("/v1/identify", json={"click_id": setup["click"], "customer_id": "u"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "junk", ["", "   ", "null", "undefined", "0", "-1", "anonymous", "[object Object]", "NULL"]
)
@pytest.mark.parametrize("field", ["customer_id", "visitor_id"])
def test_junk_identifiers_are_rejected(
    client: TestClient, setup: dict[str, str], session: Session, junk: str, field: str
) -> None:
    body = {
        "program_id": setup["program"],
        "click_id": setup["click"],
        "customer_id": "u_1",
        field: junk,
    }
    response = client.post("/v1/identify", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "blocked_identifier"
    assert session.scalar(sa.select(sa.func.count()).select_from(IdentityEdge)) == 0


def test_click_id_must_look_like_one(client: TestClient, setup: dict[str, str]) -> None:
    response = client.post(
        "/v1/identify",
        json={"program_id": setup["program"], "click_id": "lnk_123", "customer_id": "u"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_click_id"


def test_conflicting_bind_is_recorded_ignored_and_reported(
    client: TestClient, setup: dict[str, str], session: Session
) -> None:
    body = {"program_id": setup["program"], "click_id": setup["click"]}
    first = client.post("/v1/identify", json={**body, "customer_id": "alice"}).json()
    assert first["new_binding"] is True
    second = client.post("/v1/identify", json={**body, "customer_id": "bob"}).json()
    assert second["new_binding"] is False
    assert second["conflicts"] == [
        {"identifier": "click_id", "value": setup["click"], "bound_customer_id": "alice"}
    ]
    statuses = session.scalars(
        sa.select(IdentityEdge.status)
        .where(IdentityEdge.click_id == setup["click"])
        .order_by(IdentityEdge.seq)
    ).all()
    assert statuses == ["bound", "conflict"]
    again = client.post("/v1/identify", json={**body, "customer_id": "alice"}).json()
    assert again == {
        "customer_id": "alice",
        "new_binding": False,
        "attributed_events": 0,
        "conflicts": [],
    }


def test_two_customers_sharing_an_email_never_merge(
    client: TestClient, setup: dict[str, str], session: Session
) -> None:
    program = setup["program"]
    client.post(
        "/v1/identify",
        json={
            "program_id": program,
            "click_id": setup["click"],
            "customer_id": "alice",
            "email": "shared@example.com",
        },
    )
    client.post(
        "/v1/identify",
        json={"program_id": program, "customer_id": "bob", "email": "shared@example.com"},
    )
    client.post(
        "/v1/events",
        json={
            "program_id": program,
            "type": "sale",
            "customer_id": "bob",
            "amount": 1000,
            "external_id": "bob-1",
        },
    )
    bob = client.post(
        "/v1/events",
        json={
            "program_id": program,
            "type": "sale",
            "customer_id": "bob",
            "amount": 1000,
            "external_id": "bob-1",
        },
    ).json()
    assert bob["attributed_to"] == []  # alice's click never reaches bob


def test_click_of_another_program_is_refused(
    client: TestClient, setup: dict[str, str], session: Session
) -> None:
    other = make_program(session, name="Other")
    session.commit()
    response = client.post(
        "/v1/identify",
        json={"program_id": other.id, "click_id": setup["click"], "customer_id": "u"},
    )
    assert response.status_code == 404


def test_visitor_carrying_a_click_binds_it(
    client: TestClient, setup: dict[str, str], session: Session
) -> None:
    program = setup["program"]
    # The landing page saw the click under an anonymous visitor id (no customer yet).
    session.add(
        IdentityEdge(
            id=new_id("idn"),
            program_id=program,
            click_id=setup["click"],
            visitor_id="vis_abc",
            source="browser",
        )
    )
    session.commit()
    client.post(
        "/v1/events",
        json={
            "program_id": program,
            "type": "sale",
            "customer_id": "cus_1",
            "amount": 500,
            "external_id": "s1",
        },
    )
    bound = client.post(
        "/v1/identify",
        json={"program_id": program, "visitor_id": "vis_abc", "customer_id": "cus_1"},
    ).json()
    assert bound["new_binding"] is True and bound["attributed_events"] == 1
    # A different customer claiming the same visitor is a conflict, not a merge.
    later = client.post(
        "/v1/identify",
        json={"program_id": program, "visitor_id": "vis_abc", "customer_id": "someone_else"},
    ).json()
    assert [c["identifier"] for c in later["conflicts"]] == ["visitor_id"]


def test_two_binds_racing_for_one_click_leave_one_binding() -> None:
    """Both calls find the click unbound; the database lets one bound edge in (a partial unique
    index) and the loser answers as a conflict, exactly as if it had come second."""
    with scratch_database(create_test_database) as (_url, sessions):
        with sessions() as setup:
            program = make_program(setup)
            partner = make_partner(setup, program=program)
            click = make_click(setup, link=make_link(setup, partner=partner))
            setup.commit()
        with sessions() as first, sessions() as second:
            assert bind(first, program, customer_id="cus_first", click_id=click.id).new_binding
            outcome: list[BindResult] = []
            # The second call starts before the first commits: on PostgreSQL its read sees no
            # binding and its insert waits on the unique index; SQLite serializes the writers.
            racer = threading.Thread(
                target=lambda: outcome.append(
                    bind(second, program, customer_id="cus_second", click_id=click.id)
                )
            )
            racer.start()
            time.sleep(0.3)  # let it reach the insert (or the write lock) before the commit
            first.commit()
            racer.join(timeout=30)
            second.commit()
        (result,) = outcome
        assert not result.new_binding
        assert result.conflicts == [
            {"identifier": "click_id", "value": click.id, "bound_customer_id": "cus_first"}
        ]
        with sessions() as check:
            bound = check.scalars(
                sa.select(IdentityEdge.customer_id).where(
                    IdentityEdge.click_id == click.id, IdentityEdge.status == "bound"
                )
            ).all()
            assert bound == ["cus_first"]
            assert clicks_of_customer(check, program.id, "cus_second") == []
