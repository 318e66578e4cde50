"""Named API keys: create (secret once), list, soft revoke, allowed models, batched last_used_at (AT-3, AT-6)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnigate.keyusage import KeyUsageRecorder
from omnigate.store import keys as key_store
from omnigate.store import migrate, tenants
from omnigate.store.database import Database
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Gateway, create_tenant, user
from tests.conftest import gateway_env


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def new_key(client: httpx.AsyncClient, tenant_key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/keys/api", json={"name": "ci", **body}, headers=bearer(tenant_key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_list_and_revoke(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client)
    created = await new_key(client, tenant.key, name="  deploy bot  ")
    secret = created["key"]
    assert secret.startswith("og-") and created["prefix"] == secret[:11] and created["name"] == "deploy bot"
    assert created["project_id"] == tenant.project_id and created["allowed_models"] is None
    assert created["revoked_at"] is None and created["last_used_at"] is None and created["created_at"]

    me = (await client.get("/v1/me", headers=bearer(secret))).json()
    assert me["key_id"] == created["id"] and me["project_id"] == tenant.project_id

    listing = await client.get("/v1/keys/api", headers=tenant.headers)
    assert listing.status_code == 200 and secret not in listing.text and tenant.key not in listing.text
    keys = listing.json()["data"]
    assert [k["name"] for k in keys] == ["default", "deploy bot"]
    assert all("key" not in k for k in keys)

    revoked = await client.delete(f"/v1/keys/api/{created['id']}", headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    # The revoking process refuses the key on its very next request.
    assert (await client.get("/v1/me", headers=bearer(secret))).status_code == 401
    again = await client.delete(f"/v1/keys/api/{created['id']}", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    keys = (await client.get("/v1/keys/api", headers=tenant.headers)).json()["data"]
    assert [k["revoked_at"] is not None for k in keys] == [False, True]

    # A key may revoke itself; it stops at once.
    own = (await client.get("/v1/me", headers=tenant.headers)).json()["key_id"]
    assert (await client.delete(f"/v1/keys/api/{own}", headers=tenant.headers)).status_code == 200
    assert (await client.get("/v1/me", headers=tenant.headers)).status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "allowed_models": "gpt-4o"}, "allowed_models"),
        ({"name": "x", "allowed_models": []}, "allowed_models"),
        ({"name": "x", "allowed_models": [" "]}, "allowed_models"),
        # Names no chat request could use (the chat rule: 1-256 visible ASCII characters).
        ({"name": "x", "allowed_models": ["gpt 4o"]}, "allowed_models"),
        ({"name": "x", "allowed_models": ["openai/模型"]}, "allowed_models"),
        ({"name": "x", "allowed_models": ["m" * 257]}, "allowed_models"),
        # Fields beyond a project key's rights are refused, not ignored (AT-3).
        ({"name": "x", "project_id": "proj_other"}, None),
        ({"name": "x", "org_id": "org_other"}, None),
        ({"name": "x", "role": "admin"}, None),
        ({"name": "x", "scopes": ["/*"]}, None),
        ({"name": "x", "is_admin": True}, None),
        ({"name": "x", "expires_at": "1970-01-01T00:00:00Z"}, None),
    ],
)
async def test_bad_key_payloads_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], param: str | None
) -> None:
    tenant = await create_tenant(client)
    response = await client.post("/v1/keys/api", json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert len((await client.get("/v1/keys/api", headers=tenant.headers)).json()["data"]) == 1


async def test_allowed_models_take_every_name_a_chat_request_can_use(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client)
    names = ["m" * 256, "azure/my-deployment.v2", "!~"]
    assert (await new_key(client, tenant.key, allowed_models=names))["allowed_models"] == names


async def test_minted_keys_cannot_reach_admin_routes(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client)
    minted = await new_key(client, tenant.key)
    for method, path in [
        ("GET", "/v1/admin/orgs"),
        ("POST", "/v1/admin/projects"),
        ("PATCH", "/v1/admin/orgs/x"),
    ]:
        response = await client.request(method, path, headers=bearer(minted["key"]))
        assert response.status_code == 403, (method, path)


async def test_allowed_models_restrict_chat_models_and_minting(gateway: Gateway) -> None:
    client, tenant = gateway.client, gateway.tenant
    restricted = await new_key(client, tenant.key, allowed_models=["gpt-4o-mini", "gpt-4o-mini"])
    assert restricted["allowed_models"] == ["gpt-4o-mini"]
    headers = bearer(restricted["key"])
    chat = {"messages": [user("hi")]}

    ok = await client.post("/v1/chat/completions", json={**chat, "model": "gpt-4o-mini"}, headers=headers)
    assert ok.status_code == 200, ok.text
    for model in ("claude-sonnet-4-5", "azure/chat-deployment", "openai/gpt-4o-mini"):
        refused = await client.post("/v1/chat/completions", json={**chat, "model": model}, headers=headers)
        assert refused.status_code == 403, (model, refused.text)
        assert refused.json()["error"]["code"] == "model_not_allowed"
    native = await client.post("/v1/chat", json={**chat, "model": "claude-sonnet-4-5"}, headers=headers)
    assert native.status_code == 403

    listed = (await client.get("/v1/models", headers=headers)).json()["data"]
    assert [m["id"] for m in listed] == ["gpt-4o-mini"]
    assert (await client.get("/v1/models/claude-sonnet-4-5", headers=headers)).status_code == 404
    assert (await client.get("/v1/models/gpt-4o-mini", headers=headers)).status_code == 200
    unrestricted = (await client.get("/v1/models", headers=tenant.headers)).json()["data"]
    assert len(unrestricted) > 1

    # A restricted key cannot mint a key for other models, and its keys inherit its restriction.
    widened = await client.post(
        "/v1/keys/api", json={"name": "wide", "allowed_models": ["claude-sonnet-4-5"]}, headers=headers
    )
    assert widened.status_code == 403 and widened.json()["error"]["param"] == "allowed_models"
    inherited = await new_key(client, restricted["key"], name="child")
    assert inherited["allowed_models"] == ["gpt-4o-mini"]


async def test_last_used_at_is_written_behind_the_requests(backend: dict[str, str]) -> None:
    env = gateway_env(backend)
    async with run_gateway(env) as client:
        tenant = await create_tenant(client)
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        # A recorder without its timer, so the test decides when the batch is written.
        background, runtime.key_usage = runtime.key_usage, KeyUsageRecorder(runtime.db)
        for _ in range(3):
            assert (await client.get("/v1/me", headers=tenant.headers)).status_code == 200
        assert runtime.key_usage.pending == 1  # one key, three uses, nothing written yet
        keys = (await client.get("/v1/keys/api", headers=tenant.headers)).json()["data"]
        assert keys[0]["last_used_at"] is None
        await runtime.key_usage.flush()
        keys = (await client.get("/v1/keys/api", headers=tenant.headers)).json()["data"]
        assert keys[0]["last_used_at"] is not None
        runtime.key_usage = background
        second = await new_key(client, tenant.key, name="second")
        assert (await client.get("/v1/me", headers=bearer(second["key"]))).status_code == 200
    # Shutdown flushes what is still pending: a restarted gateway sees the second key's use.
    async with run_gateway(env) as client:
        keys = (await client.get("/v1/keys/api", headers=tenant.headers)).json()["data"]
        assert [k["name"] for k in keys] == ["default", "second"]
        assert keys[1]["last_used_at"] is not None


async def test_key_usage_recorder_keeps_times_when_a_flush_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    await db.connect()
    org = await tenants.create_org(db, name="acme")
    _, key, _ = await tenants.create_project(db, org.id, "web")
    await db.disconnect()

    recorder = KeyUsageRecorder(db, interval_s=0.05)
    recorder.record(key.id)
    with pytest.raises(RuntimeError):
        await recorder.flush()  # the database is down: the time is kept for the next flush
    assert recorder.pending == 1

    await db.connect()
    try:
        recorder.start()  # the background task writes it within an interval or so
        deadline = time.monotonic() + 2.0
        while (await key_store.list_keys(db, key.project_id))[0].last_used_at is None:
            assert time.monotonic() < deadline, "the background flush never wrote last_used_at"
            await asyncio.sleep(0.02)
        assert recorder.pending == 0
        await recorder.aclose()
    finally:
        await db.disconnect()
