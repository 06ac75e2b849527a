"""Every class of bad input gets a 4xx problem+json with a machine code, and writes nothing."""

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.programs.models import Program

PROGRAM = {"name": "Acme", "currency": "USD", "default_destination_url": "https://acme.example/"}


def programs_count(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Program)) or 0


def assert_problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["code"] == code
    assert body["status"] == status
    return body


def test_malformed_json_is_400(client: TestClient, session: Session) -> None:
    response = client.post(
        "/v1/programs", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")
    assert programs_count(session) == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", 123, "validation_error"),
        ("currency", 840, "validation_error"),
        ("attribution_window_days", "60", "invalid_window"),
        ("attribution_window_days", 1.5, "invalid_window"),
        ("allowed_domains", "acme.example", "validation_error"),
        ("metadata", ["not", "a", "dict"], "validation_error"),
        ("attribution_model", "most_clicks", "invalid_model"),
    ],
)
def test_wrong_types_are_422_with_field_detail(
    client: TestClient, session: Session, field: str, value: object, code: str
) -> None:
    body = assert_problem(client.post("/v1/programs", json={**PROGRAM, field: value}), 422, code)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert any(field in e["loc"] for e in errors)
    assert programs_count(session) == 0


def test_unknown_fields_are_422(client: TestClient) -> None:
    body = assert_problem(
        client.post("/v1/programs", json={**PROGRAM, "colour": "red"}), 422, "validation_error"
    )
    errors = body["errors"]
    assert isinstance(errors, list)
    assert any(e["type"] == "extra_forbidden" for e in errors)


def test_oversize_body_is_413(client: TestClient, session: Session) -> None:
    huge = {**PROGRAM, "metadata": {"blob": "x" * 100_000}}
    assert_problem(client.post("/v1/programs", json=huge), 413, "body_too_large")
    assert programs_count(session) == 0


def test_oversize_strings_are_422(client: TestClient) -> None:
    assert_problem(
        client.post("/v1/programs", json={**PROGRAM, "name": "x" * 201}), 422, "validation_error"
    )
    big_meta = {**PROGRAM, "metadata": {f"k{i}": "v" * 100 for i in range(100)}}
    assert_problem(client.post("/v1/programs", json=big_meta), 422, "validation_error")


@pytest.mark.parametrize(
    "url", ["not a url", "https://", "http://[::1", "https://acme.example:99999/"]
)
def test_bad_urls_are_422(client: TestClient, url: str) -> None:
    response = client.post(
        "/v1/programs",
        json={**PROGRAM, "default_destination_url": url, "allowed_domains": ["acme.example"]},
    )
    assert response.status_code == 422


def test_bad_currency_is_422(client: TestClient) -> None:
    assert_problem(
        client.post("/v1/programs", json={**PROGRAM, "currency": "XYZ"}), 422, "invalid_currency"
    )


@pytest.mark.parametrize("cursor", ["!!!", "e30", "eyJhZnRlciI6IDF9", "a" * 300])
def test_bad_pagination_cursor_is_4xx(client: TestClient, cursor: str) -> None:
    response = client.get("/v1/programs", params={"cursor": cursor})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("limit", ["0", "201", "abc"])
def test_bad_limit_is_422(client: TestClient, limit: str) -> None:
    assert client.get("/v1/programs", params={"limit": limit}).status_code == 422


def test_unknown_route_is_problem_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    assert client.delete("/v1/programs").status_code == 405
