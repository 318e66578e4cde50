"""Fixtures for the budget and rate-limit tests: gateways on the fakes, injectable clocks, exact costs."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest

from omnigate import hookimpl
from omnigate.chat.validate import parse_chat_request
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies import budget, rate_limit
from omnigate.policies.estimate import output_tokens, prompt_tokens, worst_case_usage
from omnigate.pricing import ModelPrice, cost_micros
from omnigate.settings import Settings
from omnigate.testing import Reply
from omnigate.testing.fakes.script import Usage as FakeUsage
from omnigate.testing.pytest_plugin import run_gateway, serve_gateway
from tests.chat.conftest import TEST_PRICES, Fakes, Gateway, Tenant, chat_env, create_tenant, fakes
from tests.conftest import admin_headers
from tests.state.harness import delete_prefix

__all__ = [
    "AdmissionGateways",
    "FakeClock",
    "admission_env",
    "body",
    "chat_env",
    "exact_reply",
    "fakes",
    "gateways",
    "set_budgets",
    "utc",
    "worst_case",
]

DEFAULT_CAP = 4096  # BUDGET_DEFAULT_MAX_TOKENS's default
# One attempt per request and a breaker that never opens: these tests count admissions, not retries.
QUIET = {"RETRY_MAX_ATTEMPTS": "1", "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "100000"}


def utc(text: str) -> float:
    """Epoch seconds of an ISO 8601 UTC time, e.g. ``utc("2099-03-30T23:59:59.999")``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


@attrs.define
class FakeClock:
    now: float

    def __call__(self) -> float:
        return self.now

    def set(self, text: str) -> None:
        self.now = utc(text)


class ClockedAdmission:
    """Registers the built-in rate-limit and budget policies with an injected clock (the built-in
    plugins are blocked by name, as an operator would)."""

    def __init__(self, clock: FakeClock, policies: tuple[str, ...]) -> None:
        self.clock = clock
        self.policies = policies

    @hookimpl
    def omnigate_register_policies(self, registry: PolicyRegistry, settings: Settings) -> None:
        if "rate_limit" in self.policies:
            registry.add("rate_limit", lambda context: rate_limit.build(context, self.clock))
        if "budget" in self.policies:
            registry.add("budget", lambda context: budget.build(context, self.clock))


def body(text: str = "hello there", max_tokens: int | None = 1000, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    return {**payload, **extra}


def _price(name: str) -> ModelPrice:
    entry = TEST_PRICES[name]
    return ModelPrice(Decimal(str(entry["input"])), Decimal(str(entry["output"])))


def worst_case(payload: dict[str, Any], price: str = "openai/gpt-4o-mini") -> int:
    """The reservation the budget policy makes for ``payload``, in micro-USD."""
    return cost_micros(_price(price), worst_case_usage(parse_chat_request(payload), DEFAULT_CAP))


def estimated_tokens(payload: dict[str, Any]) -> int:
    return worst_case_usage(parse_chat_request(payload), DEFAULT_CAP).total_tokens


def exact_reply(payload: dict[str, Any], **options: Any) -> Reply:
    """A reply whose reported usage is exactly the estimate, so its cost equals its reservation."""
    request = parse_chat_request(payload)
    usage = FakeUsage(input=prompt_tokens(request), output=output_tokens(request, DEFAULT_CAP))
    return Reply.text("ok", usage=usage, **options)


def cost_of(input_tokens: int, output_tokens: int, price: str = "openai/gpt-4o-mini") -> int:
    from omnigate.chat.models import Usage

    return cost_micros(_price(price), Usage(input_tokens=input_tokens, output_tokens=output_tokens))


async def set_budgets(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> None:
    """``org_daily_budget_usd=…``, ``project_rpm=…`` and so on, through the admin API."""
    org = {k.removeprefix("org_"): v for k, v in fields.items() if k.startswith("org_")}
    project = {k.removeprefix("project_"): v for k, v in fields.items() if k.startswith("project_")}
    for path, changes in (
        (f"/v1/admin/orgs/{tenant.org_id}", org),
        (f"/v1/admin/projects/{tenant.project_id}", project),
    ):
        if changes:
            response = await client.patch(path, json=changes, headers=admin_headers())
            assert response.status_code == 200, response.text


def usd(micros: int) -> float:
    return micros / 1_000_000


@pytest.fixture
def admission_env(chat_env: dict[str, str]) -> dict[str, str]:
    return {**chat_env, **QUIET}


GatewayFactory = Callable[..., Awaitable[Gateway]]


@attrs.define
class AdmissionGateways:
    """Starts gateways on the fakes; every one it starts shares the database (and, on the production
    backend, the Redis prefix unless ``fresh_state=True``)."""

    env: dict[str, str]
    stack: contextlib.AsyncExitStack
    prefixes: list[str] = attrs.Factory(list)

    async def start(
        self,
        tenant: Tenant | None = None,
        clock: FakeClock | None = None,
        fresh_state: bool = False,
        policies: tuple[str, ...] = ("rate_limit", "budget"),
        **env: str,
    ) -> Gateway:
        """``clock`` replaces the built-in policies by clocked ones (only those named in ``policies``)."""
        settings_env = {**self.env, **env}
        plugins: list[tuple[str, Any]] = []
        if clock is not None:
            settings_env["OMNIGATE_BLOCK_PLUGINS"] = "rate_limit,budget"
            plugins.append(("clocked-admission", ClockedAdmission(clock, policies)))
        if fresh_state and "REDIS_URL" in settings_env:
            settings_env["OMNIGATE_STATE_PREFIX"] = f"test:{uuid.uuid4().hex[:8]}:"
        if "REDIS_URL" in settings_env:
            self.prefixes.append(settings_env.get("OMNIGATE_STATE_PREFIX", "omnigate:"))
        client = await self.stack.enter_async_context(run_gateway(settings_env, plugins))
        return Gateway(client, tenant if tenant is not None else await create_tenant(client))

    @contextlib.asynccontextmanager
    async def served(self, server: str = "hypercorn", **env: str) -> AsyncIterator[str]:
        """A gateway under ``server`` on a real socket (client disconnects); yields its base URL."""
        settings_env = {**self.env, **env}
        if "REDIS_URL" in settings_env:
            self.prefixes.append(settings_env.get("OMNIGATE_STATE_PREFIX", "omnigate:"))
        async with serve_gateway(settings_env, server=server) as base_url:
            yield base_url

    @contextlib.asynccontextmanager
    async def running(self, tenant: Tenant | None = None, **options: Any) -> AsyncIterator[Gateway]:
        """A gateway that stops (flushing its usage records) when the block exits."""
        async with contextlib.AsyncExitStack() as stack:
            inner = AdmissionGateways(self.env, stack, self.prefixes)
            yield await inner.start(tenant, **options)


@pytest.fixture
async def gateways(admission_env: dict[str, str], fakes: Fakes) -> AsyncIterator[AdmissionGateways]:
    async with contextlib.AsyncExitStack() as stack:
        started = AdmissionGateways(admission_env, stack)
        try:
            yield started
        finally:
            await stack.aclose()
            for prefix in set(started.prefixes):
                if prefix.startswith("test:"):
                    await delete_prefix(prefix)
