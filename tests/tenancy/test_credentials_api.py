"""BYOK: PUT/GET/DELETE /v1/credentials/{provider}, encryption at rest, SSRF refusals, invalidation, no redirects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from omnigate.store import credentials as credential_store
from omnigate.testing import Reply
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import GATEWAY_KEYS, Fakes, Gateway, create_tenant, user
from tests.conftest import gateway_env
from tests.tenancy.conftest import Sentinel
from tests.tenancy.test_netguard import HOSTILE
from tests.tenancy.test_revocation import PUBSUB_SLACK_S, production_env

SECRET = "sk-proj-canary-0123456789-WXYZ"
AZURE_META = {"endpoint": "https://20.42.0.1", "deployment": "chat", "api_version": "2024-10-21"}


def runtime_of(client: httpx.AsyncClient) -> Any:
    return client._transport.app.state.runtime  # type: ignore[attr-defined]


async def test_put_get_list_delete(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client)
    put = await client.put("/v1/credentials/openai", json={"api_key": f"  {SECRET} "}, headers=tenant.headers)
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["provider"] == "openai" and body["last4"] == "WXYZ" and body["meta"] is None
    assert SECRET not in put.text and SECRET[:8] not in put.text

    azure = await client.put(
        "/v1/credentials/azure", json={"api_key": "k" * 32, "meta": AZURE_META}, headers=tenant.headers
    )
    assert azure.status_code == 200, azure.text
    assert azure.json()["meta"] == AZURE_META

    one = await client.get("/v1/credentials/openai", headers=tenant.headers)
    assert one.status_code == 200 and one.json()["last4"] == "WXYZ" and SECRET not in one.text
    listing = await client.get("/v1/credentials", headers=tenant.headers)
    assert [c["provider"] for c in listing.json()["data"]] == [
        "azure",
        "openai",
    ] and SECRET not in listing.text
    assert set(listing.json()["data"][0]) == {
        "object",
        "provider",
        "last4",
        "meta",
        "created_at",
        "updated_at",
    }

    # Encrypted at rest: the stored ciphertext is not the secret and decrypts only with the key.
    runtime = runtime_of(client)
    row = await runtime.db.fetch_one(
        "SELECT secret_ciphertext FROM provider_credentials WHERE project_id = :p AND provider = 'openai'",
        {"p": tenant.project_id},
    )
    assert (
        SECRET not in row["secret_ciphertext"]
        and runtime.secret_box.decrypt(row["secret_ciphertext"]) == SECRET
    )

    deleted = await client.delete("/v1/credentials/openai", headers=tenant.headers)
    assert deleted.status_code == 200 and deleted.json() == {
        "object": "credential",
        "provider": "openai",
        "deleted": True,
    }
    assert (await client.get("/v1/credentials/openai", headers=tenant.headers)).status_code == 404
    assert (await client.delete("/v1/credentials/openai", headers=tenant.headers)).status_code == 404


@pytest.mark.parametrize(
    ("provider", "body", "param"),
    [
        ("cohere", {"api_key": SECRET}, "provider"),
        ("OpenAI", {"api_key": SECRET}, "provider"),
        ("openai", {}, "api_key"),
        ("openai", {"api_key": ""}, "api_key"),
        ("openai", {"api_key": "sk-a\r\nx-injected: 1"}, "api_key"),
        ("openai", {"api_key": "sk a b"}, "api_key"),
        ("openai", {"api_key": 42}, "api_key"),
        ("openai", {"api_key": "x" * 5000}, "api_key"),
        ("openai", {"api_key": SECRET, "meta": {"endpoint": "https://20.42.0.1"}}, "meta"),
        ("openai", {"api_key": SECRET, "project_id": "proj_other"}, None),
        ("azure", {"api_key": SECRET}, "meta"),
        ("azure", {"api_key": SECRET, "meta": "https://20.42.0.1"}, "meta"),
        ("azure", {"api_key": SECRET, "meta": {"deployment": "chat"}}, "meta.endpoint"),
        ("azure", {"api_key": SECRET, "meta": {**AZURE_META, "api_base": "https://x"}}, None),
        (
            "azure",
            {"api_key": SECRET, "meta": {**AZURE_META, "api_version": "latest; DROP"}},
            "meta.api_version",
        ),
        ("azure", {"api_key": SECRET, "meta": {**AZURE_META, "deployment": "a#b"}}, "meta.deployment"),
        ("azure", {"api_key": SECRET, "meta": {**AZURE_META, "deployment": "../x"}}, "meta.deployment"),
        ("azure", {"api_key": SECRET, "meta": {**AZURE_META, "deployment": "a@b?c"}}, "meta.deployment"),
    ],
)
async def test_bad_credentials_are_400(
    client: httpx.AsyncClient, provider: str, body: dict[str, Any], param: str | None
) -> None:
    tenant = await create_tenant(client)
    response = await client.put(f"/v1/credentials/{provider}", json=body, headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param or param is None
    assert SECRET not in response.text
    assert (await client.get("/v1/credentials", headers=tenant.headers)).json()["data"] == []


async def test_ssrf_table_is_refused_at_write_time(client: httpx.AsyncClient) -> None:
    """SSRF-1 through the API: every hostile endpoint is a 400 naming meta.endpoint; nothing is stored."""
    tenant = await create_tenant(client)
    # Table entries whose names the unit tests resolve with a fake DNS cannot resolve here: still refused.
    for endpoint in HOSTILE:
        body = {"api_key": SECRET, "meta": {"endpoint": endpoint, "deployment": "chat"}}
        response = await client.put("/v1/credentials/azure", json=body, headers=tenant.headers)
        assert response.status_code == 400, (endpoint, response.text)
        error = response.json()["error"]
        assert error["param"] == "meta.endpoint" and error["message"].startswith("meta.endpoint"), endpoint
        assert SECRET not in response.text
    assert (await client.get("/v1/credentials", headers=tenant.headers)).json()["data"] == []
    legit = {"api_key": SECRET, "meta": {"endpoint": "https://[2606:4700::1111]/"}}
    assert (await client.put("/v1/credentials/azure", json=legit, headers=tenant.headers)).status_code == 200


async def test_tenant_endpoints_are_refused_again_at_call_time(
    backend: dict[str, str], sentinel: Sentinel
) -> None:
    """SSRF-1/2: a stored row that skipped validation (edited in the database) is still refused, key unsent."""
    env = gateway_env(backend, AZURE_OPENAI_API_VERSION="2024-10-21")
    async with run_gateway(env) as client:
        tenant = await create_tenant(client)
        runtime = runtime_of(client)
        for endpoint, reason in [
            ("https://localhost", "loopback"),  # a name: refused by the resolver aiohttp connects through
            ("https://127.0.0.1", "loopback"),
            ("https://169.254.169.254", "metadata"),
            ("https://[::ffff:127.0.0.1]", "loopback"),
            (f"http://127.0.0.1:{sentinel.port}", "https"),
            ("https://2130706433", "non-canonical"),
        ]:
            await credential_store.set_credential(
                runtime.db, runtime.secret_box, tenant.project_id, "azure", SECRET, {"endpoint": endpoint}
            )
            runtime.engine.credentials.invalidate(tenant.project_id, "azure")
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "azure/chat", "messages": [user("hi")]},
                headers=tenant.headers,
            )
            assert response.status_code == 400, (endpoint, response.text)
            message = response.json()["error"]["message"]
            assert "meta.endpoint" in message and reason in message, (endpoint, message)
            assert SECRET not in response.text
    assert sentinel.connections == 0


async def test_byok_takes_effect_at_once_and_goes_back_after_delete(gateway: Gateway, fakes: Fakes) -> None:
    client, tenant = gateway.client, gateway.tenant
    chat = {"model": "gpt-4o-mini", "messages": [user("hi")]}
    assert (await gateway.chat(chat)).status_code == 200
    assert fakes.openai.requests[-1].headers["authorization"] == f"Bearer {GATEWAY_KEYS['openai']}"
    # The miss above is cached for KEY_CACHE_TTL_S; the PUT invalidates it, so the very next call uses BYOK.
    assert (
        await client.put("/v1/credentials/openai", json={"api_key": SECRET}, headers=tenant.headers)
    ).status_code == 200
    assert (await gateway.chat(chat)).status_code == 200
    assert fakes.openai.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert (await client.delete("/v1/credentials/openai", headers=tenant.headers)).status_code == 200
    assert (await gateway.chat(chat)).status_code == 200
    assert fakes.openai.requests[-1].headers["authorization"] == f"Bearer {GATEWAY_KEYS['openai']}"


async def test_azure_byok_end_to_end(gateway: Gateway, fakes: Fakes) -> None:
    meta = {"endpoint": fakes.azure.base_url, "deployment": "chat-deployment", "api_version": "2024-10-21"}
    put = await gateway.client.put(
        "/v1/credentials/azure", json={"api_key": SECRET, "meta": meta}, headers=gateway.tenant.headers
    )
    assert put.status_code == 200, put.text
    response = await gateway.chat({"model": "azure/chat-deployment", "messages": [user("hi")]})
    assert response.status_code == 200, response.text
    assert fakes.azure.requests[-1].headers["api-key"] == SECRET


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_upstream_redirects_are_not_followed(
    gateway: Gateway, fakes: Fakes, sentinel: Sentinel, status: int
) -> None:
    """SSRF-2: a redirect (to loopback, or to the metadata address) is a 502; nobody follows it."""
    meta = {"endpoint": fakes.azure.base_url, "deployment": "chat-deployment"}
    await gateway.client.put(
        "/v1/credentials/azure", json={"api_key": SECRET, "meta": meta}, headers=gateway.tenant.headers
    )
    for fake, model, location in [
        (fakes.openai, "gpt-4o-mini", sentinel.url),
        (fakes.azure, "azure/chat-deployment", "http://169.254.169.254/latest/meta-data/"),
    ]:
        fake.enqueue(Reply.raw(status, "", headers={"location": location}))
        before = fake.request_count
        response = await gateway.chat({"model": model, "messages": [user("hi")]})
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream_redirect"
        assert fake.request_count == before + 1 and SECRET not in response.text
    assert sentinel.connections == 0


async def test_credential_change_reaches_another_instance_through_redis(
    fakes: Fakes, postgres_url: str, redis_url: str
) -> None:
    env = production_env(
        postgres_url,
        redis_url,
        KEY_CACHE_TTL_S="60",
        OPENAI_BASE_URL=fakes.openai.base_url,
        OPENAI_API_KEY=GATEWAY_KEYS["openai"],
        ALLOW_PRIVATE_UPSTREAMS="true",
    )
    chat = {"model": "gpt-4o-mini", "messages": [user("hi")]}
    async with run_gateway(env) as a, run_gateway(env) as b:
        tenant = await create_tenant(a)
        assert (await b.post("/v1/chat/completions", json=chat, headers=tenant.headers)).status_code == 200
        assert fakes.openai.requests[-1].headers["authorization"] == f"Bearer {GATEWAY_KEYS['openai']}"
        put = await a.put("/v1/credentials/openai", json={"api_key": SECRET}, headers=tenant.headers)
        assert put.status_code == 200
        deadline = time.monotonic() + PUBSUB_SLACK_S
        while True:  # B cached "no BYOK credential" for 60 s; only the message can change that
            assert (
                await b.post("/v1/chat/completions", json=chat, headers=tenant.headers)
            ).status_code == 200
            if fakes.openai.requests[-1].headers["authorization"] == f"Bearer {SECRET}":
                break
            assert time.monotonic() < deadline, "instance B kept the stale credential"
            await asyncio.sleep(0.05)
