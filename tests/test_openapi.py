"""The OpenAPI document tells a client the truth about errors: every operation declares the
problem+json responses it can give, and real error bodies have the declared shape."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from openpartner.api.errors import PROBLEM, PROBLEM_RESPONSES, Problem


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_api_operation_declares_each_error_status_as_a_problem(anon: TestClient) -> None:
    document = anon.get("/openapi.json").json()
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for method, path, operation in operations(document):
        if not path.startswith("/v1/"):
            continue
        for status in PROBLEM_RESPONSES:
            declared = operation["responses"].get(str(status))
            assert declared is not None, f"{method} {path} does not declare {status}"
            assert declared["content"] == {PROBLEM: problem}, f"{method} {path} {status}"
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["type", "title", "status", "code", "detail"]
    # FastAPI's own 422 shape (``{"detail": [...]}``) is never what the API sends.
    assert "HTTPValidationError" not in schemas


def test_health_and_readiness_declare_no_problems(anon: TestClient) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    assert set(paths["/health"]["get"]["responses"]) == {"200"}
    ready = paths["/ready"]["get"]["responses"]
    assert set(ready) == {"200", "503"}
    assert set(ready["503"]["content"]) == {"application/json"}


def test_error_bodies_have_the_declared_problem_shape(client: TestClient, anon: TestClient) -> None:
    answers = [
        anon.get("/v1/programs"),
        client.get("/v1/programs/prg_missing"),
        client.get("/v1/programs", params={"cursor": "not-a-cursor"}),
        client.post("/v1/programs", json={"name": 1}),
        client.post("/v1/programs", content=b"{", headers={"content-type": "application/json"}),
        client.post("/v1/programs", json={"name": "x" * 100_000}),
    ]
    assert [a.status_code for a in answers] == [401, 404, 400, 422, 400, 413]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM
        body = answer.json()
        assert set(body) <= set(Problem.model_fields), body
        problem = Problem.model_validate(body)
        assert problem.status == answer.status_code
        assert problem.type.endswith("/" + problem.code)
