"""``POST /v1/events`` through the fast path (events/fast_path.py) answers exactly as the FastAPI
route it stands in for: every request below is sent to both, and the answers must be equal."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.core.time import utc_now
from openpartner.events.fast_path import EventsFastPath
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_program

Send = Callable[[TestClient, str], Any]


@pytest.fixture
def route_only(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    """The same app without the fast path: every request reaches the FastAPI route."""
    app = create_app(settings, sessions)
    fast_path: object = EventsFastPath
    app.user_middleware = [m for m in app.user_middleware if m.cls is not fast_path]
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


@pytest.fixture
def program_id(session: Session) -> str:
    program = make_program(session, currency="USD")
    session.commit()
    return program.id


def sale(program_id: str, **extra: object) -> dict[str, object]:
    return {
        "program_id": program_id,
        "type": "sale",
        "customer_id": "cus_1",
        "amount": 1999,
        "occurred_at": (utc_now() - timedelta(days=1)).isoformat(),
        **extra,
    }


BAD_REQUESTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "malformed JSON": lambda p: {"content": b'{"type": "sale",'},
    "empty body": lambda p: {"content": b""},
    "a JSON array": lambda p: {"json": [sale(p)]},
    "a JSON string": lambda p: {"json": "sale"},
    "null": lambda p: {"content": b"null"},
    "an unknown field": lambda p: {"json": {**sale(p), "colour": "red"}, "key": "k-1"},
    "a float amount": lambda p: {"json": {**sale(p), "amount": 19.99}, "key": "k-2"},
    "a bad type and currency": lambda p: {
        "json": {**sale(p), "type": "Sale!", "currency": "dollars"},
        "key": "k-3",
    },
    "no idempotency key": lambda p: {"json": sale(p)},
    "a key too long": lambda p: {"json": sale(p), "key": "k" * 256},
    "a key too long and a bad body": lambda p: {"json": {"type": 1}, "key": "k" * 256},
    "header and external_id differ": lambda p: {
        "json": {**sale(p), "external_id": "a"},
        "key": "b",
    },
    "an unknown program": lambda p: {"json": {**sale(p), "program_id": "prg_nope"}, "key": "k4"},
    "a sale without amount": lambda p: {"json": {**sale(p), "amount": None}, "key": "k-5"},
    "an oversize body": lambda p: {"json": {**sale(p), "metadata": {"x": "y" * 70_000}}},
    "a JSON content type with a suffix": lambda p: {
        "content": b'{"type": 1}',
        "content_type": "application/merge-patch+json",
    },
    "bytes that are not UTF-8": lambda p: {"content": b'{"type": "\xff"}', "key": "k-7"},
    "an exponent amount": lambda p: {"json": {**sale(p), "amount": "1e999997"}, "key": "k-8"},
    "an amount above the maximum": lambda p: {"json": {**sale(p), "amount": 2**63}, "key": "k-9"},
    "a NUL in customer_id": lambda p: {"json": {**sale(p), "customer_id": "c\x00"}, "key": "k10"},
    "a NUL in a metadata key": lambda p: {"json": {**sale(p), "metadata": {"\x00": 1}}},
    "a lone surrogate": lambda p: {"content": b'{"type": "sale", "customer_id": "\\ud800"}'},
    "a year-1 timestamp with an offset": lambda p: {
        "json": {**sale(p), "occurred_at": "0001-01-01T00:00:00+01:00"},
        "key": "k11",
    },
    "metadata nested 33 deep": lambda p: {
        "json": {
            **sale(p),
            "metadata": {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        },
        "key": "k12",
    },
    "JSON nested 1,000 deep": lambda p: {
        "content": b'{"metadata": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    },
    "a NUL in the query string": lambda p: {"json": sale(p), "key": "k13", "query": "?x=%00"},
    "a content type that is not JSON": lambda p: {
        "content": b'{"type": "sale"}',
        "content_type": "text/plain",
    },
}


def post(client: TestClient, request: dict[str, Any], **headers: str) -> Any:
    if "key" in request:
        headers["Idempotency-Key"] = request["key"]
    url = "/v1/events" + request.get("query", "")
    if "content" in request:
        headers["Content-Type"] = request.get("content_type", "application/json")
        return client.post(url, content=request["content"], headers=headers)
    return client.post(url, json=request["json"], headers=headers)


def answer(response: Any) -> tuple[int, str, Any]:
    return response.status_code, response.headers["content-type"], response.json()


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_the_routes_answer(
    client: TestClient, route_only: TestClient, program_id: str, case: str
) -> None:
    request = BAD_REQUESTS[case](program_id)
    fast, route = answer(post(client, request)), answer(post(route_only, request))
    assert fast == route
    assert 400 <= fast[0] < 500


def test_keys_and_scopes_are_checked_first(
    client: TestClient, route_only: TestClient, program_id: str, key_for: Any
) -> None:
    reader = key_for("events:read")
    bad_body = {"json": {"type": 1}, "key": "k-6"}
    for token, status in (("op_sk_wrong", 401), (reader, 403)):
        auth = f"Bearer {token}"
        fast = answer(post(client, bad_body, Authorization=auth))
        assert fast == answer(post(route_only, bad_body, Authorization=auth))
        assert fast[0] == status


def test_accepted_and_replayed_events_get_the_routes_answer(
    client: TestClient, route_only: TestClient, program_id: str
) -> None:
    event = sale(program_id)  # one occurred_at for all
    for app, key in ((client, "fast-1"), (route_only, "route-1")):
        first = post(app, {"json": event, "key": key})
        again = post(app, {"json": event, "key": key})
        assert (first.status_code, again.status_code) == (201, 201)
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    fast = post(client, {"json": event, "key": "fast-1"}).json()
    route = post(route_only, {"json": event, "key": "route-1"}).json()
    for body in (fast, route):
        del body["id"], body["external_id"]
    assert fast == route
