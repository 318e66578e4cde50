"""AT-1/AT-2: every route by credential, and a key of project A cannot read or change anything of project B."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.routing import Route

from omnigate.middleware.auth import RouteClass, classify
from tests.chat.conftest import Gateway, Tenant, create_tenant, user
from tests.conftest import admin_headers

PATH_VALUES = {
    "{org_id}": "org_x",
    "{project_id}": "proj_x",
    "{model_id:path}": "gpt-4o-mini",
    "{key_id}": "key_x",
    "{provider}": "openai",
}


def concrete(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


def mounted_routes(client: httpx.AsyncClient) -> list[tuple[str, str, RouteClass]]:
    app = client._transport.app  # type: ignore[attr-defined]
    found = []
    for route in app.routes:
        assert isinstance(route, Route), route
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, route.path, classify(route.path)))
    return found


async def test_every_route_by_credential(client: httpx.AsyncClient) -> None:
    """AT-1: no credential, a malformed one, a revoked key, a project key, the admin key — on every route."""
    tenant = await create_tenant(client)
    spare = (await client.post("/v1/keys/api", json={"name": "spare"}, headers=tenant.headers)).json()
    await client.delete(f"/v1/keys/api/{spare['id']}", headers=tenant.headers)
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "malformed": {"authorization": "Bearer og-' OR 1=1 --"},
        "revoked": {"authorization": f"Bearer {spare['key']}"},
        "project": tenant.headers,
        "admin": admin_headers(),
    }
    routes = mounted_routes(client)
    assert {cls for _, _, cls in routes} == set(RouteClass)
    for method, path, route_class in routes:
        url = concrete(path)
        for name, headers in credentials.items():
            status = (await client.request(method, url, headers=headers)).status_code
            if route_class is RouteClass.PUBLIC:
                expected_ok = True
            elif route_class is RouteClass.ADMIN:
                expected_ok = name == "admin"
                if not expected_ok:
                    assert status in (401, 403), (method, path, name, status)
            else:
                expected_ok = name == "project"
                if not expected_ok:
                    assert status == 401, (method, path, name, status)
            if expected_ok:
                assert status not in (401, 403), (method, path, name, status)


def without_last_use(listing: dict[str, Any]) -> list[dict[str, Any]]:
    """A key listing without last_used_at, which the background flush may set at any moment."""
    return [{k: v for k, v in key.items() if k != "last_used_at"} for key in listing["data"]]


async def _project_with_data(client: httpx.AsyncClient, name: str) -> tuple[Tenant, dict[str, Any]]:
    tenant = await create_tenant(client, name)
    extra = (await client.post("/v1/keys/api", json={"name": f"{name}-extra"}, headers=tenant.headers)).json()
    put = await client.put(
        "/v1/credentials/openai", json={"api_key": f"sk-{name}-secret-0000{name}"}, headers=tenant.headers
    )
    assert put.status_code == 200
    return tenant, extra


async def test_a_key_of_project_a_cannot_touch_project_b(gateway: Gateway) -> None:
    """AT-2: keys, credentials, usage and models of B stay invisible and unchanged for A."""
    client = gateway.client
    a, a_extra = await _project_with_data(client, "alpha")
    b, b_extra = await _project_with_data(client, "bravo")
    b_before = {
        "keys": without_last_use((await client.get("/v1/keys/api", headers=b.headers)).json()),
        "credentials": (await client.get("/v1/credentials", headers=b.headers)).json(),
    }

    # Lists hold only A's objects, whatever the query string says.
    for query in ("", f"?project_id={b.project_id}", f"?org_id={b.org_id}"):
        keys = (await client.get(f"/v1/keys/api{query}", headers=a.headers)).json()["data"]
        assert {k["project_id"] for k in keys} == {a.project_id} and len(keys) == 2
        creds = (await client.get(f"/v1/credentials{query}", headers=a.headers)).json()["data"]
        assert [c["last4"] for c in creds] == ["lpha"]

    # B's key id answers exactly like an id that never existed.
    foreign = await client.delete(f"/v1/keys/api/{b_extra['id']}", headers=a.headers)
    unknown = await client.delete("/v1/keys/api/key_00000000000000000000000000000000", headers=a.headers)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()

    # A's credential operations only ever reach A's own row.
    assert (await client.delete("/v1/credentials/anthropic", headers=a.headers)).status_code == 404
    replaced = await client.put(
        "/v1/credentials/openai", json={"api_key": "sk-alpha-new-000000AAAA"}, headers=a.headers
    )
    assert replaced.json()["last4"] == "AAAA"
    assert (await client.delete("/v1/credentials/openai", headers=a.headers)).status_code == 200

    # A's chats use A's credential and are recorded under A only.
    gateway.tenant = a
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("from a")]})).status_code == 200
    a_rows = await gateway.usage_rows()
    assert len(a_rows) == 1 and a_rows[0]["project_id"] == a.project_id
    gateway.tenant = b
    assert await gateway.usage_rows() == []

    # No project GET route (usage, metrics, models, keys, …) shows B's ids, even when asked for B.
    assert (await gateway.chat({"model": "gpt-4o-mini", "messages": [user("from b")]})).status_code == 200
    await gateway.runtime.usage_writer.flush()
    b_ids = [b.project_id, b.org_id, b_extra["id"], b_extra["prefix"]]
    query = f"?project_id={b.project_id}&org_id={b.org_id}&key_id={b_extra['id']}"
    for method, path, route_class in mounted_routes(client):
        if route_class is RouteClass.PROJECT and method == "GET" and "{" not in path:
            response = await client.get(path + query, headers=a.headers)
            assert response.status_code < 500, (path, response.status_code)
            assert not any(found in response.text for found in b_ids), path
    me = (await client.get("/v1/me", headers=a.headers)).json()
    assert me["project_id"] == a.project_id and me["org_id"] == a.org_id

    # Nothing of B changed, and B's keys still work.
    assert without_last_use((await client.get("/v1/keys/api", headers=b.headers)).json()) == b_before["keys"]
    assert (await client.get("/v1/credentials", headers=b.headers)).json() == b_before["credentials"]
    assert (
        await client.get("/v1/me", headers={"authorization": f"Bearer {b_extra['key']}"})
    ).status_code == 200
    assert a_extra["project_id"] == a.project_id

    # No project key opens an admin route (every admin route and method).
    for method, path, route_class in mounted_routes(client):
        if route_class is RouteClass.ADMIN:
            for headers in (a.headers, {"x-api-key": a.key}, {"x-admin-key": a.key}):
                status = (await client.request(method, concrete(path), headers=headers)).status_code
                assert status in (401, 403), (method, path, status)
