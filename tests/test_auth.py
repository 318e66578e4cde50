"""Authentication by route class: project keys, the admin key, and what cannot change the decision."""

from __future__ import annotations

import httpx
import pytest

from omnigate.middleware.auth import RouteClass, classify
from tests.conftest import ADMIN_KEY, ClientFactory, admin_headers
from tests.test_admin_tenants import create_org, create_project


async def project_key(client: httpx.AsyncClient) -> str:
    org = await create_org(client)
    project = await create_project(client, org["id"])
    return str(project["api_key"])


def assert_error(response: httpx.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type and error["message"]
    assert set(error) == {"message", "type", "code", "param"}
    assert response.headers["x-request-id"]


async def test_project_key_in_either_header(client: httpx.AsyncClient) -> None:
    key = await project_key(client)
    assert (await client.get("/v1/me", headers={"x-api-key": key})).status_code == 200
    assert (await client.get("/v1/me", headers={"authorization": f"Bearer {key}"})).status_code == 200
    assert (await client.get("/v1/me", headers={"authorization": f"bearer   {key}"})).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer og-not-a-real-key"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"x-api-key": "sk-upstream-style-key"},
        {"x-api-key": "og-' OR '1'='1"},
        {"x-api-key": "og-" + "A" * 5000},
    ],
)
async def test_missing_or_bad_project_keys_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert_error(await client.get("/v1/me", headers=headers), 401, "authentication_error")


async def test_admin_routes(client: httpx.AsyncClient) -> None:
    key = await project_key(client)
    assert (await client.get("/v1/admin/orgs", headers=admin_headers())).status_code == 200
    assert_error(await client.get("/v1/admin/orgs"), 401, "authentication_error")
    assert_error(
        await client.get("/v1/admin/orgs", headers={"x-admin-key": ADMIN_KEY + "x"}),
        401,
        "authentication_error",
    )
    assert_error(
        await client.get("/v1/admin/orgs", headers={"authorization": f"Bearer {key}"}),
        403,
        "permission_error",
    )
    assert_error(await client.get("/v1/admin/orgs", headers={"x-api-key": key}), 403, "permission_error")
    # The admin key is not a project key either.
    assert_error(
        await client.get("/v1/me", headers={"authorization": f"Bearer {ADMIN_KEY}"}),
        401,
        "authentication_error",
    )


async def test_admin_api_is_disabled_without_admin_key(make_client: ClientFactory) -> None:
    client = await make_client(ADMIN_API_KEY="")
    assert_error(await client.get("/v1/admin/orgs", headers=admin_headers()), 403, "permission_error")


@pytest.mark.parametrize(
    "host",
    [
        "health",
        "evil.example/health/live",
        "localhost:8080",
        "[::1]",
        "a@b",
        "x/v1/me?",
        "testserver#/health",
    ],
)
async def test_host_header_cannot_change_which_auth_applies(client: httpx.AsyncClient, host: str) -> None:
    for path in ("/v1/me", "/v1/admin/orgs"):
        response = await client.get(path, headers={"host": host})
        assert response.status_code in {401, 400}, (host, path, response.status_code)


def test_route_classes_come_from_the_path_only() -> None:
    assert classify("/v1/admin/orgs") is RouteClass.ADMIN
    assert classify("/v1/admin") is RouteClass.ADMIN
    assert classify("/v1/administrator") is RouteClass.PROJECT
    assert classify("/v1/me") is RouteClass.PROJECT
    assert classify("/v1") is RouteClass.PROJECT
    assert classify("/health/live") is RouteClass.PUBLIC
    assert classify("/v10/me") is RouteClass.PUBLIC


async def test_every_mounted_route_is_classified_and_protected(client: httpx.AsyncClient) -> None:
    """The live router's routes, each with its expected credential; a new route must be added here."""
    from starlette.routing import Route

    app = client._transport.app  # type: ignore[attr-defined]
    expected = {
        "/health/live": RouteClass.PUBLIC,
        "/health/ready": RouteClass.PUBLIC,
        "/version": RouteClass.PUBLIC,
        "/v1/me": RouteClass.PROJECT,
        "/v1/chat": RouteClass.PROJECT,
        "/v1/chat/completions": RouteClass.PROJECT,
        "/v1/models": RouteClass.PROJECT,
        "/v1/models/{model_id:path}": RouteClass.PROJECT,
        "/v1/keys/api": RouteClass.PROJECT,
        "/v1/keys/api/{key_id}": RouteClass.PROJECT,
        "/v1/credentials": RouteClass.PROJECT,
        "/v1/credentials/{provider}": RouteClass.PROJECT,
        "/v1/admin/orgs": RouteClass.ADMIN,
        "/v1/admin/orgs/{org_id}": RouteClass.ADMIN,
        "/v1/admin/orgs/{org_id}/metrics": RouteClass.ADMIN,
        "/v1/metrics": RouteClass.PROJECT,
        "/metrics": RouteClass.PUBLIC,
        "/v1/admin/projects": RouteClass.ADMIN,
        "/v1/admin/projects/{project_id}": RouteClass.ADMIN,
    }
    mounted = {route.path for route in app.routes if isinstance(route, Route)}
    assert mounted == set(expected), f"unclassified or missing routes: {mounted ^ set(expected)}"
    for route in app.routes:
        assert isinstance(route, Route)
        assert classify(route.path) is expected[route.path]
        for method in route.methods or ():
            if method == "HEAD":
                continue
            path = (
                route.path.replace("{org_id}", "org_x")
                .replace("{project_id}", "proj_x")
                .replace("{model_id:path}", "gpt-4o")
                .replace("{key_id}", "key_x")
                .replace("{provider}", "openai")
            )
            response = await client.request(method, path)
            if expected[route.path] is RouteClass.PUBLIC:
                assert response.status_code < 400, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)


async def test_cached_principal_makes_no_database_round_trip(make_client: ClientFactory) -> None:
    client = await make_client()
    key = await project_key(client)
    runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
    assert (await client.get("/v1/me", headers={"x-api-key": key})).status_code == 200
    real_db = runtime._db
    runtime._db = None  # any database use now raises NotStartedError
    try:
        for _ in range(5):
            assert (await client.get("/v1/me", headers={"x-api-key": key})).status_code == 200
    finally:
        runtime._db = real_db
