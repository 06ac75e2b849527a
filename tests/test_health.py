from fastapi.testclient import TestClient


def test_health_answers_without_a_key(anon: TestClient) -> None:
    response = anon.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_checks_the_database(anon: TestClient) -> None:
    response = anon.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


def test_openapi_lists_the_v1_routes(anon: TestClient) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for path in ("/v1/programs", "/v1/partners", "/v1/links", "/v1/api-keys"):
        assert path in paths
    assert anon.get("/docs").status_code == 200
