from collections.abc import Callable

import anyio.to_thread
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.accounts.models import ApiKey
from openpartner.accounts.service import KEY_CACHE_TTL, ensure_bootstrap_key, hash_token
from openpartner.api.concurrency import slot_count, thread_count
from openpartner.api.deps import CurrentPrincipal, DbSession
from openpartner.core.time import clock, utc_now
from openpartner.settings import Settings
from tests.factories import make_partner, make_program

KeyFor = Callable[..., str]


def test_create_secret_key_shows_token_once_and_stores_only_hash(
    client: TestClient, session: Session
) -> None:
    response = client.post("/v1/api-keys", json={"name": "ci", "scopes": ["links:read"]})
    assert response.status_code == 201, response.text
    body = response.json()
    token = body["token"]
    assert token.startswith("op_sk_")
    stored = session.get(ApiKey, body["id"])
    assert stored is not None
    assert stored.token_hash == hash_token(token)
    assert token not in {str(v) for v in vars(stored).values()}
    listed = client.get("/v1/api-keys").json()["data"]
    assert all("token" not in item for item in listed)


def test_publishable_key_needs_a_program_and_holds_only_visitors_write(
    client: TestClient, session: Session
) -> None:
    program = make_program(session)
    session.commit()
    no_program = client.post(
        "/v1/api-keys", json={"kind": "publishable", "scopes": ["visitors:write"]}
    )
    assert no_program.status_code == 422
    too_much = client.post(
        "/v1/api-keys",
        json={"kind": "publishable", "scopes": ["links:write"], "program_id": program.id},
    )
    assert too_much.status_code == 422
    money = client.post(
        "/v1/api-keys",
        json={"kind": "publishable", "scopes": ["events:write"], "program_id": program.id},
    )
    assert money.status_code == 422
    assert money.json()["code"] == "invalid_publishable_scope"
    ok = client.post("/v1/api-keys", json={"kind": "publishable", "program_id": program.id})
    assert ok.status_code == 201
    assert ok.json()["token"].startswith("op_pk_")
    assert ok.json()["scopes"] == ["visitors:write"]


def test_both_auth_headers_work(anon: TestClient, key_for: KeyFor) -> None:
    token = key_for("programs:read")
    assert anon.get("/v1/programs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert anon.get("/v1/programs", headers={"X-API-Key": token}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer op_sk_wrong"},
        {"X-API-Key": "nonsense"},
        {"Authorization": "Basic abc"},
    ],
)
def test_missing_or_invalid_key_is_401(anon: TestClient, headers: dict[str, str]) -> None:
    response = anon.get("/v1/programs", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] in {"missing_api_key", "invalid_api_key"}


def test_revoked_key_is_401(anon: TestClient, client: TestClient, key_for: KeyFor) -> None:
    token = key_for("programs:read")
    key_id = client.get("/v1/api-keys").json()["data"][-1]["id"]
    client.post(f"/v1/api-keys/{key_id}/revoke")
    response = anon.get("/v1/programs", headers={"X-API-Key": token})
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_last_used_at_is_kept(anon: TestClient, session: Session, key_for: KeyFor) -> None:
    token = key_for("programs:read")
    anon.get("/v1/programs", headers={"X-API-Key": token})
    key = session.scalar(sa.select(ApiKey).where(ApiKey.token_hash == hash_token(token)))
    assert key is not None
    session.refresh(key)
    assert key.last_used_at is not None


ROUTES = [
    ("GET", "/v1/programs", "programs:read"),
    ("POST", "/v1/programs", "programs:write"),
    ("GET", "/v1/programs/{program}", "programs:read"),
    ("PATCH", "/v1/programs/{program}", "programs:write"),
    ("POST", "/v1/programs/{program}/archive", "programs:write"),
    ("GET", "/v1/partners", "partners:read"),
    ("POST", "/v1/partners", "partners:write"),
    ("GET", "/v1/partners/{partner}", "partners:read"),
    ("PATCH", "/v1/partners/{partner}", "partners:write"),
    ("GET", "/v1/links", "links:read"),
    ("POST", "/v1/links", "links:write"),
    ("GET", "/v1/links/{link}", "links:read"),
    ("PATCH", "/v1/links/{link}", "links:write"),
    ("POST", "/v1/links/{link}/archive", "links:write"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_scope_enforcement_per_route(
    anon: TestClient, session: Session, key_for: KeyFor, method: str, path: str, scope: str
) -> None:
    from tests.factories import make_link

    link = make_link(session)
    session.commit()
    url = path.format(program=link.program_id, partner=link.partner_id, link=link.id)
    other_scope = "events:write"
    wrong = anon.request(method, url, headers={"X-API-Key": key_for(other_scope)}, json={})
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "missing_scope"
    right = anon.request(method, url, headers={"X-API-Key": key_for(scope)}, json={})
    assert right.status_code != 403, right.text  # may be 422 for the empty body, never 403


def test_scoped_key_never_gets_admin(anon: TestClient, key_for: KeyFor) -> None:
    every_scope = key_for("programs:write", "partners:write", "links:write", "payouts:write")
    response = anon.post("/v1/api-keys", json={}, headers={"X-API-Key": every_scope})
    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"
    key_writer = key_for("keys:write", "links:read")
    admin = anon.post("/v1/api-keys", json={"admin": True}, headers={"X-API-Key": key_writer})
    assert admin.status_code == 403
    assert admin.json()["code"] == "key_escalation"


def test_program_bound_key_sees_only_its_program(
    anon: TestClient, session: Session, key_for: KeyFor
) -> None:
    mine = make_partner(session)
    theirs = make_partner(session, program=make_program(session, name="Other"))
    session.commit()
    token = key_for("partners:read", "programs:read", program_id=mine.program_id)
    headers = {"X-API-Key": token}
    listed = anon.get("/v1/partners", headers=headers).json()["data"]
    assert [p["id"] for p in listed] == [mine.id]
    assert anon.get(f"/v1/partners/{theirs.id}", headers=headers).status_code == 404
    assert anon.get(f"/v1/programs/{theirs.program_id}", headers=headers).status_code == 404
    programs = anon.get("/v1/programs", headers=headers).json()["data"]
    assert [p["id"] for p in programs] == [mine.program_id]


def test_bootstrap_key_is_created_once(session: Session) -> None:
    session.execute(sa.delete(ApiKey))
    first = ensure_bootstrap_key(session)
    assert first is not None and first.startswith("op_sk_")
    assert ensure_bootstrap_key(session) is None


def test_key_revoked_through_the_api_stops_working_at_once(
    anon: TestClient, client: TestClient, session: Session, key_for: KeyFor
) -> None:
    token = key_for("programs:read")
    assert anon.get("/v1/programs", headers={"X-API-Key": token}).status_code == 200  # cached
    key_id = session.scalar(sa.select(ApiKey.id).where(ApiKey.token_hash == hash_token(token)))
    assert client.post(f"/v1/api-keys/{key_id}/revoke").status_code == 200
    response = anon.get("/v1/programs", headers={"X-API-Key": token})
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_key_revoked_by_another_process_stops_working_within_the_cache_bound(
    anon: TestClient, session: Session, key_for: KeyFor
) -> None:
    clock.freeze(utc_now())
    token = key_for("programs:read")
    assert anon.get("/v1/programs", headers={"X-API-Key": token}).status_code == 200
    # Revoked in the database directly, as another worker or the CLI would: this process
    # trusts what it read for at most KEY_CACHE_TTL, then reads the key again.
    key = session.scalar(sa.select(ApiKey).where(ApiKey.token_hash == hash_token(token)))
    assert key is not None
    key.revoked_at = utc_now()
    session.commit()
    assert anon.get("/v1/programs", headers={"X-API-Key": token}).status_code == 200
    clock.advance(KEY_CACHE_TTL)
    response = anon.get("/v1/programs", headers={"X-API-Key": token})
    assert response.status_code == 401
    assert response.json()["code"] == "revoked_api_key"


def test_unknown_keys_are_never_cached(anon: TestClient) -> None:
    for _ in range(2):
        response = anon.get("/v1/programs", headers={"X-API-Key": "op_sk_not-a-real-key"})
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_api_key"


def test_authenticating_a_key_leaves_no_transaction_open_for_the_handler(
    anon: TestClient, key_for: KeyFor
) -> None:
    # A request that kept its connection between two trips to the thread pool could hold the
    # last connection while every thread waits for one: the key lookup ends its own transaction.
    app = anon.app
    assert isinstance(app, FastAPI)

    @app.get("/test/in-transaction")
    def probe(session: DbSession, principal: CurrentPrincipal) -> dict[str, bool]:
        return {"in_transaction": session.in_transaction()}

    token = key_for("programs:read")
    response = anon.get("/test/in-transaction", headers={"X-API-Key": token})
    assert response.json() == {"in_transaction": False}


def test_the_api_runs_more_threads_than_database_slots(
    anon: TestClient, settings: Settings
) -> None:
    app = anon.app
    assert isinstance(app, FastAPI)

    @app.get("/test/threads")
    async def threads() -> dict[str, float]:
        return {"threads": anyio.to_thread.current_default_thread_limiter().total_tokens}

    # A request holding a slot (and maybe a lock) always finds a thread to commit in.
    assert anon.get("/test/threads").json() == {"threads": thread_count(settings)}
    assert thread_count(settings) > slot_count(settings)
