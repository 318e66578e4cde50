"""Fixtures for the resilience policy tests: gateways on the fake upstreams with chosen settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import Gateway, chat_env, create_tenant, fakes

__all__ = ["GatewayFactory", "RecordingSleep", "chat_env", "fakes", "make_gateway", "policy"]

GatewayFactory = Callable[..., Awaitable[Gateway]]

# The contract's retry defaults (chat_env turns retries off for the surface tests) with a tiny base
# delay (tests that check waits inject a sleep), and a breaker that stays out of the way unless a
# test lowers its threshold.
FAST = {
    "RETRY_MAX_ATTEMPTS": "3",
    "RETRY_BASE_DELAY_MS": "1",
    "RETRY_MAX_DELAY_MS": "8000",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "1000",
}


@pytest.fixture
async def make_gateway(chat_env: dict[str, str]) -> AsyncIterator[GatewayFactory]:
    """``await make_gateway(**ENV)`` → a started gateway on the fakes with a fresh tenant.

    ``tenant=`` reuses an existing tenant (a second app instance on the same database and state);
    ``plugins=`` adds plugin objects as ``(name, plugin)`` pairs.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def factory(tenant: Any = None, plugins: Sequence[tuple[str, Any]] = (), **env: str) -> Gateway:
            client = await stack.enter_async_context(run_gateway({**chat_env, **FAST, **env}, plugins))
            return Gateway(client, tenant if tenant is not None else await create_tenant(client))

        yield factory


def policy(gateway: Gateway, name: str) -> Any:
    """The built policy object registered under ``name`` in this gateway's pipeline."""
    return dict(gateway.runtime.plugins.policies)[name]


class RecordingSleep:
    """An injectable sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
