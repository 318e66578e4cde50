"""Admin API for organisations and projects, on both backends."""

from __future__ import annotations

import httpx

from tests.conftest import admin_headers


async def create_org(client: httpx.AsyncClient, name: str = "Acme", **fields: object) -> dict[str, object]:
    response = await client.post("/v1/admin/orgs", json={"name": name, **fields}, headers=admin_headers())
    assert response.status_code == 201, response.text
    return response.json()


async def create_project(
    client: httpx.AsyncClient, org_id: str, name: str = "web", **fields: object
) -> dict[str, object]:
    body = {"org_id": org_id, "name": name, **fields}
    response = await client.post("/v1/admin/projects", json=body, headers=admin_headers())
    assert response.status_code == 201, response.text
    return response.json()


async def test_org_create_list_show_update(client: httpx.AsyncClient) -> None:
    org = await create_org(client, "Acme", daily_budget_usd=12.5)
    assert org["name"] == "Acme" and org["daily_budget_usd"] == 12.5 and org["monthly_budget_usd"] is None
    assert org["id"].startswith("org_")

    listed = (await client.get("/v1/admin/orgs", headers=admin_headers())).json()
    assert listed["object"] == "list" and [o["id"] for o in listed["data"]] == [org["id"]]

    shown = await client.get(f"/v1/admin/orgs/{org['id']}", headers=admin_headers())
    assert shown.json() == org

    updated = await client.patch(
        f"/v1/admin/orgs/{org['id']}",
        json={"monthly_budget_usd": 300, "daily_budget_usd": None},
        headers=admin_headers(),
    )
    assert updated.status_code == 200
    assert updated.json()["monthly_budget_usd"] == 300 and updated.json()["daily_budget_usd"] is None
    assert updated.json()["name"] == "Acme"


async def test_project_create_returns_its_key_once_and_the_key_authenticates(
    client: httpx.AsyncClient,
) -> None:
    org = await create_org(client)
    project = await create_project(client, org["id"], rpm=60, monthly_budget_usd=100)
    key = project["api_key"]
    assert key.startswith("og-") and project["rpm"] == 60 and project["org_id"] == org["id"]

    me = await client.get("/v1/me", headers={"authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["project_id"] == project["id"] and me.json()["org_id"] == org["id"]

    shown = (await client.get(f"/v1/admin/projects/{project['id']}", headers=admin_headers())).json()
    listed = (await client.get("/v1/admin/projects", headers=admin_headers())).json()
    for body in (shown, *listed["data"]):
        assert "api_key" not in body and key not in str(body)


async def test_project_list_filters_by_org_and_update(client: httpx.AsyncClient) -> None:
    org_a, org_b = await create_org(client, "A"), await create_org(client, "B")
    a1 = await create_project(client, org_a["id"], "a1")
    await create_project(client, org_b["id"], "b1")
    listed = (
        await client.get("/v1/admin/projects", params={"org_id": org_a["id"]}, headers=admin_headers())
    ).json()
    assert [p["id"] for p in listed["data"]] == [a1["id"]]

    updated = await client.patch(
        f"/v1/admin/projects/{a1['id']}", json={"name": "renamed", "tpm": 5000}, headers=admin_headers()
    )
    assert updated.json()["name"] == "renamed" and updated.json()["tpm"] == 5000

    moved = await client.patch(
        f"/v1/admin/projects/{a1['id']}", json={"org_id": org_b["id"]}, headers=admin_headers()
    )
    assert moved.status_code == 400 and moved.json()["error"]["param"] == "org_id"


async def test_unknown_ids_are_404_in_the_envelope(client: httpx.AsyncClient) -> None:
    for path in ("/v1/admin/orgs/org_missing", "/v1/admin/projects/proj_missing"):
        response = await client.get(path, headers=admin_headers())
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"
    response = await client.post(
        "/v1/admin/projects", json={"org_id": "org_missing", "name": "x"}, headers=admin_headers()
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "org_id"


async def test_bad_payloads_are_400_naming_the_field_and_write_nothing(client: httpx.AsyncClient) -> None:
    cases = [
        ({"daily_budget_usd": 5}, "name"),
        ({"name": 7}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "x", "daily_budget_usd": -1}, "daily_budget_usd"),
        ({"name": "x", "daily_budget_usd": "10"}, "daily_budget_usd"),
        ({"name": "x", "daily_budget_usd": 0.0000001}, "daily_budget_usd"),
        ({"name": "x", "is_admin": True}, None),
    ]
    for body, param in cases:
        response = await client.post("/v1/admin/orgs", json=body, headers=admin_headers())
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
    malformed = await client.post(
        "/v1/admin/orgs",
        content=b'{"name": ',
        headers={**admin_headers(), "content-type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"
    not_object = await client.post("/v1/admin/orgs", json=["x"], headers=admin_headers())
    assert not_object.status_code == 400
    form = await client.post(
        "/v1/admin/orgs", content=b"name=x", headers={**admin_headers(), "content-type": "text/plain"}
    )
    assert form.status_code == 415
    project = await client.post(
        "/v1/admin/projects", json={"org_id": "x", "name": "p", "rpm": 0}, headers=admin_headers()
    )
    assert project.status_code == 400 and project.json()["error"]["param"] == "rpm"
    huge = await client.post(
        "/v1/admin/projects",
        json={"org_id": "x", "name": "p", "tpm": 100_000_000_000},
        headers=admin_headers(),
    )
    assert huge.status_code == 400 and huge.json()["error"]["param"] == "tpm"
    assert (await client.get("/v1/admin/orgs", headers=admin_headers())).json()["data"] == []


async def test_sql_metacharacters_are_stored_literally(client: httpx.AsyncClient) -> None:
    name = "Robert'); DROP TABLE organizations;-- %s %"
    org = await create_org(client, name)
    assert org["name"] == name
    response = await client.get("/v1/admin/orgs/' OR '1'='1", headers=admin_headers())
    assert response.status_code == 404
    assert len((await client.get("/v1/admin/orgs", headers=admin_headers())).json()["data"]) == 1
