"""Fixtures: a FakeOllama server, the OLLAMA_* environment pointing at it, and a gateway with the plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from omnigate.testing.pytest_plugin import GatewayFactory

from omnigate_ollama.testing import FakeOllama

from ollama_helpers import Gateway, start_gateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama() as server:
        yield server


@pytest.fixture
def ollama_env(fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> FakeOllama:
    """The plugin reads OLLAMA_* from the process environment; point it at the fake."""
    for name in ("OLLAMA_API_KEY", "OLLAMA_MODEL_PREFIXES", "OLLAMA_KEEP_ALIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_BASE_URL", fake.base_url)
    return fake


@pytest.fixture
async def gateway(ollama_env: FakeOllama, omnigate_gateway: GatewayFactory) -> Gateway:
    return await start_gateway(omnigate_gateway)
