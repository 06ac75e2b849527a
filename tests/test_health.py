import gc

import pytest
from fastapi.testclient import TestClient

from openpartner.api.app import create_app, served_app
from openpartner.settings import Settings


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


def test_the_served_app_freezes_its_start_up_objects_and_test_apps_do_not(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test app leaves the collector alone: freezing in a process that starts many apps
    # would keep every test's objects forever.
    gc.unfreeze()
    with TestClient(create_app(settings)):
        assert gc.get_freeze_count() == 0
    monkeypatch.setattr("openpartner.api.app.get_settings", lambda: settings)
    try:
        with TestClient(served_app()) as client:
            assert gc.get_freeze_count() > 0
            assert client.get("/health").status_code == 200
    finally:
        gc.unfreeze()
