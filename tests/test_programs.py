from fastapi.testclient import TestClient

PROGRAM = {
    "name": "Acme Partners",
    "currency": "usd",
    "default_destination_url": "https://acme.example/welcome",
}


def create(client: TestClient, **overrides: object) -> dict[str, object]:
    response = client.post("/v1/programs", json={**PROGRAM, **overrides})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_program_with_defaults(client: TestClient) -> None:
    program = create(client)
    assert str(program["id"]).startswith("prg_")
    assert program["currency"] == "USD"
    assert program["allowed_domains"] == ["acme.example"]
    assert program["attribution_window_days"] == 60
    assert program["attribution_model"] == "last_click"
    assert program["cookie_name"] == "_cref"
    assert program["click_param"] == "cref"
    assert program["archived"] is False


def test_get_update_and_archive_program(client: TestClient) -> None:
    program = create(client, allowed_domains=["acme.example", "*.acme.example"])
    pid = program["id"]
    assert client.get(f"/v1/programs/{pid}").json()["name"] == "Acme Partners"
    updated = client.patch(
        f"/v1/programs/{pid}",
        json={
            "attribution_window_days": 30,
            "attribution_model": "linear",
            "default_destination_url": "https://shop.acme.example/",
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["attribution_window_days"] == 30
    assert updated.json()["default_destination_url"] == "https://shop.acme.example/"
    archived = client.post(f"/v1/programs/{pid}/archive")
    assert archived.json()["archived"] is True


def test_list_programs_paginates_with_a_cursor(client: TestClient) -> None:
    ids = [create(client, name=f"P{i}")["id"] for i in range(5)]
    first = client.get("/v1/programs", params={"limit": 2}).json()
    assert first["has_more"] is True
    second = client.get("/v1/programs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/programs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    seen = [p["id"] for page in (first, second, third) for p in page["data"]]
    assert seen == sorted(str(i) for i in ids)  # id order: by millisecond, then the random part
    assert third["has_more"] is False and third["next_cursor"] is None


def test_list_programs_filters_archived(client: TestClient) -> None:
    keep = create(client)
    gone = create(client, name="Old")
    client.post(f"/v1/programs/{gone['id']}/archive")
    active = client.get("/v1/programs", params={"archived": "false"}).json()["data"]
    assert [p["id"] for p in active] == [keep["id"]]


def test_attribution_window_bounds(client: TestClient) -> None:
    for days in (0, 366):
        response = client.post("/v1/programs", json={**PROGRAM, "attribution_window_days": days})
        assert response.status_code == 422
    assert create(client, attribution_window_days=365)["attribution_window_days"] == 365


def test_default_destination_must_be_on_allowed_domains(client: TestClient) -> None:
    response = client.post("/v1/programs", json={**PROGRAM, "allowed_domains": ["other.example"]})
    assert response.status_code == 422
    assert response.json()["code"] == "destination_not_allowed"


def test_unknown_program_is_404(client: TestClient) -> None:
    response = client.get("/v1/programs/prg_nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
