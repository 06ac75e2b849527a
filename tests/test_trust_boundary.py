"""Regression tests for the attacks the trust-boundary review found, named for what they stop.

The route-by-principal matrix is ``test_access_policy.py``; these follow each attack through to
the money and the rows it would have touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.models import ApiKey
from openpartner.accounts.scopes import Principal, get_readable
from openpartner.accounts.service import create_key
from openpartner.api.app import create_app
from openpartner.attribution.records import AttributionRow
from openpartner.commissions.models import Adjustment, Commission
from openpartner.core.errors import NotFound
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_link, make_partner, make_program
from tests.ledger_helpers import pay_all, percent, refer, sale, set_rules

ORIGIN = "https://shop.acme.example"
KeyFor = Callable[..., str]


@pytest.fixture
def program(session: Session) -> Program:
    program = make_program(session, allowed_origins=[ORIGIN], holding_days=0)
    set_rules(session, program, percent(2000))
    session.commit()
    return program


@pytest.fixture
def browser(key_for: KeyFor, program: Program) -> dict[str, str]:
    """What any visitor of the merchant's page can read, and send from the page's origin."""
    token = key_for("visitors:write", program_id=program.id, kind="publishable")
    return {"X-API-Key": token, "Origin": ORIGIN}


def count(session: Session, model: type[object]) -> int:
    session.expire_all()
    return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_forged_sale_with_a_publishable_key_creates_no_commission(
    anon: TestClient,
    client: TestClient,
    session: Session,
    program: Program,
    browser: dict[str, str],
) -> None:
    partner = make_partner(session, program=program)
    client.post("/v1/promotion-codes", json={"partner_id": partner.id, "code": "ADA20"})
    for path, body in [
        (
            "/v1/events",
            {
                "program_id": program.id,
                "type": "sale",
                "amount": "99999.00",
                "currency": "USD",
                "promotion_code": "ADA20",
                "external_id": "forged-1",
            },
        ),
        ("/v1/events/batch", {"events": [{"type": "sale", "external_id": "forged-2"}]}),
    ]:
        for headers in (browser, {"X-API-Key": browser["X-API-Key"]}):
            response = anon.post(path, json=body, headers=headers)
            assert response.status_code == 403, response.text
            assert response.json()["code"] == "publishable_key_forbidden"
    assert count(session, Event) == 0
    assert count(session, Commission) == 0


def test_forged_closer_touchpoint_with_a_publishable_key_moves_no_credit(
    anon: TestClient,
    session: Session,
    settings: Settings,
    program: Program,
    browser: dict[str, str],
) -> None:
    honest, forger = make_partner(session, program=program), make_partner(session, program=program)
    customer = refer(session, honest)
    session.commit()
    touch = anon.post(
        "/v1/touchpoints",
        json={"partner_id": forger.id, "type": "closer", "customer_id": customer},
        headers=browser,
    )
    assert (touch.status_code, touch.json()["code"]) == (403, "publishable_key_forbidden")
    deal = anon.post(
        "/v1/deals",
        json={"program_id": program.id, "customer_id": customer, "amount": 100, "currency": "USD"},
        headers=browser,
    )
    assert deal.status_code == 403
    assert count(session, Touchpoint) == 0
    assert count(session, Deal) == 0
    next_sale = sale(session, settings, honest, 10_000, customer_id=customer)
    credited = session.scalars(
        sa.select(AttributionRow.partner_id).where(AttributionRow.event_id == next_sale.id)
    ).all()
    assert set(credited) == {honest.id}


def test_forged_refund_with_a_publishable_key_claws_back_nothing(
    anon: TestClient,
    session: Session,
    settings: Settings,
    program: Program,
    browser: dict[str, str],
) -> None:
    partner = make_partner(session, program=program)
    paid_sale = sale(session, settings, partner, 10_000)
    pay_all(session, program)
    session.commit()
    response = anon.post(
        "/v1/events",
        json={
            "program_id": program.id,
            "type": "refund",
            "refund_of": paid_sale.id,
            "customer_id": paid_sale.customer_id,
            "external_id": "forged-refund",
        },
        headers=browser,
    )
    assert (response.status_code, response.json()["code"]) == (403, "publishable_key_forbidden")
    assert count(session, Adjustment) == 0


def test_browser_identify_flow_with_its_preflight(
    anon: TestClient, session: Session, program: Program, browser: dict[str, str]
) -> None:
    link = make_link(session, partner=make_partner(session, program=program))
    session.commit()
    preflight = anon.options(
        "/v1/identify",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in preflight.headers["access-control-allow-headers"]
    click = anon.post("/v1/clicks", json={"link_key": link.key}, headers=browser)
    assert click.status_code == 201, click.text
    assert click.headers["access-control-allow-origin"] == ORIGIN
    identify = anon.post(
        "/v1/identify",
        json={"click_id": click.json()["click_id"], "customer_id": "user_7"},
        headers=browser,
    )
    assert identify.status_code == 200, identify.text
    assert identify.headers["access-control-allow-origin"] == ORIGIN
    assert identify.json()["new_binding"] is True
    # Only the browser routes answer CORS at all.
    other = anon.options(
        "/v1/events", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_program_bound_admin_key_cannot_mint_an_unbound_admin_key(
    anon: TestClient, key_for: KeyFor, program: Program
) -> None:
    bound = {"X-API-Key": key_for(program_id=program.id, is_admin=True)}
    for body in ({"admin": True, "program_id": None}, {"admin": True}):
        response = anon.post("/v1/api-keys", json=body, headers=bound)
        if response.status_code == 201:  # bound by default to its own program: that is allowed
            assert response.json()["program_id"] == program.id
        else:
            assert response.json()["code"] == "key_escalation"
    other = make_program_id(anon)
    escaped = anon.post("/v1/api-keys", json={"program_id": other}, headers=bound)
    assert (escaped.status_code, escaped.json()["code"]) == (403, "key_escalation")


def make_program_id(client: TestClient) -> str:
    from tests.conftest import ADMIN_TOKEN

    response = client.post(
        "/v1/programs",
        json={"name": "B", "currency": "EUR", "default_destination_url": "https://b.example/"},
        headers={"X-API-Key": ADMIN_TOKEN},
    )
    return str(response.json()["id"])


def test_program_bound_key_lists_only_its_programs_keys(
    anon: TestClient, client: TestClient, key_for: KeyFor, program: Program
) -> None:
    other = make_program_id(client)
    client.post("/v1/api-keys", json={"name": "theirs", "program_id": other})
    bound = {"X-API-Key": key_for(program_id=program.id, is_admin=True)}
    listed = anon.get("/v1/api-keys", headers=bound).json()["data"]
    assert listed and {k["program_id"] for k in listed} == {program.id}


@pytest.mark.parametrize(
    "scope", ["events:write", "programs:write", "partners:write", "visitors:write"]
)
def test_partner_key_cannot_be_given_a_write_scope(
    client: TestClient, session: Session, program: Program, scope: str
) -> None:
    partner = make_partner(session, program=program)
    session.commit()
    response = client.post("/v1/api-keys", json={"partner_id": partner.id, "scopes": [scope]})
    assert (response.status_code, response.json()["code"]) == (422, "scope_not_allowed_for_partner")


def test_partner_key_cannot_create_a_wider_key_for_itself(
    anon: TestClient, client: TestClient, session: Session, program: Program
) -> None:
    partner, other = make_partner(session, program=program), make_partner(session, program=program)
    session.commit()
    own = client.post(
        "/v1/api-keys", json={"partner_id": partner.id, "scopes": ["keys:write", "links:read"]}
    ).json()["token"]
    headers = {"X-API-Key": own}
    narrower = anon.post("/v1/api-keys", json={"scopes": ["links:read"]}, headers=headers)
    assert narrower.status_code == 201
    assert narrower.json()["partner_id"] == partner.id
    for body in (
        {"scopes": ["commissions:read"]},
        {"admin": True},
        {"partner_id": other.id, "scopes": []},
    ):
        wider = anon.post("/v1/api-keys", json=body, headers=headers)
        assert wider.status_code in (403, 422), (body, wider.text)


def test_revoked_partner_cannot_reactivate_itself_and_its_keys_die_at_once(
    anon: TestClient, client: TestClient, session: Session, program: Program
) -> None:
    partner = make_partner(session, program=program)
    session.commit()
    token = client.post(
        "/v1/api-keys", json={"partner_id": partner.id, "scopes": ["partners:read"]}
    ).json()["token"]
    headers = {"X-API-Key": token}
    assert anon.get(f"/v1/partners/{partner.id}", headers=headers).status_code == 200
    reactivate = anon.patch(
        f"/v1/partners/{partner.id}", json={"status": "active"}, headers=headers
    )
    assert (reactivate.status_code, reactivate.json()["code"]) == (403, "partner_key_forbidden")
    assert client.patch(f"/v1/partners/{partner.id}", json={"status": "revoked"}).status_code == 200
    after = anon.get(f"/v1/partners/{partner.id}", headers=headers)
    assert (after.status_code, after.json()["code"]) == (401, "revoked_api_key")
    # Reinstated, the partner needs new keys: the old ones stay dead.
    assert client.patch(f"/v1/partners/{partner.id}", json={"status": "active"}).status_code == 200
    assert anon.get(f"/v1/partners/{partner.id}", headers=headers).status_code == 401


def test_partner_key_reported_sale_for_itself_is_refused(
    anon: TestClient, client: TestClient, session: Session, program: Program
) -> None:
    partner = make_partner(session, program=program)
    session.commit()
    token = client.post(
        "/v1/api-keys", json={"partner_id": partner.id, "scopes": ["commissions:read"]}
    ).json()["token"]
    response = anon.post(
        "/v1/events",
        json={"program_id": program.id, "type": "sale", "amount": 99900, "currency": "USD"},
        headers={"X-API-Key": token},
    )
    assert (response.status_code, response.json()["code"]) == (403, "partner_key_forbidden")
    assert count(session, Event) == 0


@pytest.fixture
def keyless_app(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    """The API with no ``ADMIN_API_KEY`` in the environment: the keys in the database are all."""
    app = create_app(settings.model_copy(update={"admin_api_key": None}), sessions)
    with TestClient(app) as c:
        yield c


def test_last_admin_key_cannot_revoke_itself(keyless_app: TestClient, session: Session) -> None:
    session.execute(sa.update(ApiKey).values(revoked_at=sa.func.current_timestamp()))
    only = create_key(session, kind="secret", scopes=[], is_admin=True)
    session.commit()
    headers = {"X-API-Key": only.token}
    response = keyless_app.post(f"/v1/api-keys/{only.key.id}/revoke", headers=headers)
    assert (response.status_code, response.json()["code"]) == (409, "last_admin_credential")
    second = keyless_app.post("/v1/api-keys", json={"admin": True}, headers=headers).json()
    revoked = keyless_app.post(f"/v1/api-keys/{only.key.id}/revoke", headers=headers)
    assert revoked.status_code == 200
    assert second["is_admin"] is True


def test_env_admin_key_counts_as_an_admin_credential(client: TestClient, session: Session) -> None:
    session.execute(sa.update(ApiKey).values(revoked_at=sa.func.current_timestamp()))
    only = create_key(session, kind="secret", scopes=[], is_admin=True)
    session.commit()
    assert client.post(f"/v1/api-keys/{only.key.id}/revoke").status_code == 200


@pytest.fixture
def leaks(
    client: TestClient, session: Session, settings: Settings, program: Program
) -> dict[str, str]:
    """Another partner's sale and a deal with notes, and a read-only key of a bystander."""
    seller, bystander = (
        make_partner(session, program=program),
        make_partner(session, program=program),
    )
    event = sale(session, settings, seller, 10_000)
    deal = client.post(
        "/v1/deals",
        json={
            "program_id": program.id,
            "customer_id": event.customer_id,
            "amount": 5000,
            "currency": "USD",
            "metadata": {"notes": "CFO wants a discount"},
        },
    ).json()
    scopes = ["partners:read", "links:read", "commissions:read", "payouts:read", "attribution:read"]
    token = client.post("/v1/api-keys", json={"partner_id": bystander.id, "scopes": scopes}).json()[
        "token"
    ]
    return {"event": event.id, "deal": deal["id"], "token": token}


@pytest.mark.parametrize(
    "path",
    ["/v1/events/{event}", "/v1/deals/{deal}", "/v1/deals/{deal}/attribution", "/v1/events"],
)
def test_read_only_partner_key_reads_no_event_deal_or_deal_attribution(
    anon: TestClient, leaks: dict[str, str], path: str
) -> None:
    response = anon.get(path.format(**leaks), headers={"X-API-Key": leaks["token"]})
    assert (response.status_code, response.json()["code"]) == (403, "partner_key_forbidden")
    assert "CFO" not in response.text


def test_the_scoping_function_shows_a_partner_no_event_or_deal(
    session: Session, leaks: dict[str, str], program: Program
) -> None:
    """Beneath the policy: even a route that let a partner in could not read these rows."""
    partner_id = session.scalars(sa.select(Partner.id).order_by(Partner.id)).all()[-1]
    partner = Principal(key_id="k", kind="secret", program_id=program.id, partner_id=partner_id)
    for model, row_id in ((Event, leaks["event"]), (Deal, leaks["deal"])):
        with pytest.raises(NotFound):
            get_readable(session, partner, model, row_id)
