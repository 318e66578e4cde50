"""A gateway wired to the four fake upstreams, with an organisation, a project and its key."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from omnigate.cli.servers import SERVERS
from omnigate.testing import FakeAnthropic, FakeAzureOpenAI, FakeGemini, FakeOpenAI
from omnigate.testing.pytest_plugin import run_gateway, serve_gateway
from tests.conftest import admin_headers, gateway_env


class Pieces:
    """An upstream body (``response.content``) that arrives in the given pieces, one per read."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)

    def read_nowait(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def at_eof(self) -> bool:
        return not self.pieces

    async def readany(self) -> bytes:
        return b""


# USD per million tokens; deterministic prices for cost assertions.
TEST_PRICES = {
    "openai/gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075, "cache_write": 0},
    "anthropic/claude-sonnet-4-5": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    "gemini/gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cache_read": 0.075, "cache_write": 0},
    "azure/chat-deployment": {"input": 2.5, "output": 10, "cache_read": 1.25, "cache_write": 0},
}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "azure": "azure/chat-deployment",
}
GATEWAY_KEYS = {
    "openai": "sk-gateway-openai-0000000000",
    "anthropic": "sk-ant-gateway-000000000000",
    "gemini": "gemini-gateway-key-00000000",
    "azure": "azure-gateway-key-0000000000",
}


@attrs.define
class Fakes:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    gemini: FakeGemini
    azure: FakeAzureOpenAI

    def for_provider(self, provider: str) -> Any:
        return getattr(self, provider)

    def total_requests(self) -> int:
        return sum(fake.request_count for fake in (self.openai, self.anthropic, self.gemini, self.azure))


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with contextlib.AsyncExitStack() as stack:
        azure = FakeAzureOpenAI(deployments={"chat-deployment": "gpt-4o"})
        yield Fakes(
            openai=await stack.enter_async_context(FakeOpenAI()),
            anthropic=await stack.enter_async_context(FakeAnthropic()),
            gemini=await stack.enter_async_context(FakeGemini()),
            azure=await stack.enter_async_context(azure),
        )


@pytest.fixture
def chat_env(backend: dict[str, str], fakes: Fakes, tmp_path: Path) -> dict[str, str]:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TEST_PRICES))
    return gateway_env(
        backend,
        OPENAI_BASE_URL=fakes.openai.base_url,
        ANTHROPIC_BASE_URL=fakes.anthropic.base_url,
        GEMINI_BASE_URL=fakes.gemini.base_url,
        AZURE_OPENAI_ENDPOINT=fakes.azure.base_url,
        OPENAI_API_KEY=GATEWAY_KEYS["openai"],
        ANTHROPIC_API_KEY=GATEWAY_KEYS["anthropic"],
        GEMINI_API_KEY=GATEWAY_KEYS["gemini"],
        AZURE_OPENAI_API_KEY=GATEWAY_KEYS["azure"],
        MODEL_PRICES_FILE=str(prices),
        ALLOW_PRIVATE_UPSTREAMS="true",
        # These tests look at the surfaces and accounting; retries and breakers have their own suites.
        RETRY_MAX_ATTEMPTS="1",
        CIRCUIT_BREAKER_FAILURE_THRESHOLD="1000",
    )


@attrs.define
class Tenant:
    org_id: str
    project_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


async def create_tenant(client: httpx.AsyncClient, name: str = "acme") -> Tenant:
    org = (await client.post("/v1/admin/orgs", json={"name": name}, headers=admin_headers())).json()
    project = (
        await client.post(
            "/v1/admin/projects", json={"org_id": org["id"], "name": name}, headers=admin_headers()
        )
    ).json()
    return Tenant(org["id"], project["id"], project["api_key"])


@attrs.define
class Gateway:
    client: httpx.AsyncClient
    tenant: Tenant

    @property
    def runtime(self) -> Any:
        return self.client._transport.app.state.runtime  # type: ignore[attr-defined]

    async def chat(
        self, body: dict[str, Any], path: str = "/v1/chat/completions", **headers: str
    ) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.tenant.headers, **headers})

    async def usage_rows(self) -> list[dict[str, Any]]:
        from omnigate.store.usage import list_usage

        await self.runtime.usage_writer.flush()
        return [
            dict(attrs.asdict(row)) if attrs.has(type(row)) else dict(row)
            for row in await list_usage(self.runtime.db, self.tenant.project_id)
        ]


@pytest.fixture
async def gateway(chat_env: dict[str, str]) -> AsyncIterator[Gateway]:
    async with run_gateway(chat_env) as client:
        yield Gateway(client, await create_tenant(client))


@attrs.define
class Served:
    base_url: str
    tenant: Tenant
    database_url: str


@pytest.fixture(params=SERVERS)
async def served(request: pytest.FixtureRequest, chat_env: dict[str, str]) -> AsyncIterator[Served]:
    """The gateway on a real socket (streaming and disconnect behaviour), under each server `serve` runs."""
    async with serve_gateway(chat_env, server=request.param) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            tenant = await create_tenant(client)
        yield Served(base_url, tenant, chat_env["DATABASE_URL"])


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}
