"""Policy composition, and providers/policies instantiated once per app run and closed at shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from omnigate import hookimpl
from omnigate.chat.models import Target, Usage
from omnigate.chat.validate import parse_chat_request
from omnigate.gateway.accounting import Ledger
from omnigate.gateway.pipeline import compose
from omnigate.plugin.interfaces import Call, CallNext, CallOutcome, PluginContext
from omnigate.plugin.registry import PolicyRegistry, ProviderRegistry
from omnigate.pricing import PriceBook
from omnigate.settings import Settings
from omnigate.testing.pytest_plugin import run_gateway
from omnigate.usage.writer import UsageWriter
from tests.conftest import gateway_env


def make_call(model: str = "m") -> Call:
    request = parse_chat_request({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    return Call(
        request_id="r",
        principal=None,
        request=request,
        target=Target("p", model),
        deadline=time.monotonic() + 5,
    )


async def test_compose_runs_policies_outermost_first_with_around_semantics() -> None:
    trace: list[str] = []

    def tracer(name: str) -> Any:
        async def policy(call: Call, call_next: CallNext) -> Any:
            trace.append(f"{name}:before")
            result = await call_next(call)
            trace.append(f"{name}:after")
            return result

        return policy

    async def short_circuit(call: Call, call_next: CallNext) -> Any:
        if call.target.model == "cached":
            return "from-cache"
        return await call_next(call)

    async def retry_twice(call: Call, call_next: CallNext) -> Any:
        first = await call_next(call)
        return (first, await call_next(call))

    async def terminal(call: Call) -> Any:
        trace.append("provider")
        return call.target.model

    handler = compose([tracer("outer"), short_circuit, retry_twice, tracer("inner")], terminal)
    assert await handler(make_call("x")) == ("x", "x")
    assert trace == [
        "outer:before",
        "inner:before",
        "provider",
        "inner:after",
        "inner:before",
        "provider",
        "inner:after",
        "outer:after",
    ]
    trace.clear()
    assert await handler(make_call("cached")) == "from-cache"
    assert trace == ["outer:before", "outer:after"]


class Closing:
    name = "closing"

    def __init__(self) -> None:
        self.closed = False

    async def send(self, call: Call) -> Any:
        return call.target.model

    async def aclose(self) -> None:
        self.closed = True


async def test_app_instantiates_plugins_once_and_closes_providers(embedded: dict[str, str]) -> None:
    made: list[Closing] = []
    contexts: list[PluginContext] = []

    def provider_factory(context: PluginContext) -> Closing:
        contexts.append(context)
        made.append(Closing())
        return made[-1]

    async def passthrough(call: Call, call_next: CallNext) -> Any:
        return await call_next(call)

    class Plugin:
        @hookimpl
        def omnigate_register_providers(self, registry: ProviderRegistry, settings: Settings) -> None:
            registry.add("closing", provider_factory, model_prefixes=("close-",))

        @hookimpl
        def omnigate_register_policies(self, registry: PolicyRegistry, settings: Settings) -> None:
            registry.add("passthrough", lambda context: passthrough)
            registry.add("switched_off", lambda context: None)  # disabled by its settings

    async with run_gateway(gateway_env(embedded), [("plugin", Plugin())]) as client:
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        plugins = runtime.plugins
        assert plugins.providers["closing"] is made[0] and ("close-", "closing") in plugins.model_prefixes
        assert {"openai", "azure", "anthropic", "gemini"} <= set(plugins.providers)
        names = [name for name, _ in plugins.policies]
        assert "passthrough" in names and "switched_off" not in names
        assert contexts[0].state is runtime.state and contexts[0].settings is runtime.settings
        assert not made[0].closed
    assert len(made) == 1 and made[0].closed


async def test_finalizers_run_once_innermost_first_and_survive_failures_and_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace: list[str] = []
    release = asyncio.Event()

    def plain(name: str) -> Any:
        def finalizer(outcome: CallOutcome) -> None:
            trace.append(f"{name}:{outcome.status}")

        return finalizer

    def failing(outcome: CallOutcome) -> None:
        raise RuntimeError("finalizer bug")

    async def waiting(outcome: CallOutcome) -> None:
        await release.wait()
        trace.append("async")

    call = make_call()
    for finalizer in (plain("outer"), waiting, failing, plain("inner")):
        call.on_finish(finalizer)
    ledger = Ledger(PriceBook(), UsageWriter(None), None, "r", time.perf_counter())  # type: ignore[arg-type]
    ledger.call, ledger.outcome = call, CallOutcome("ok", 200, Usage(), 0)

    request = asyncio.create_task(ledger.run_finalizers())
    await asyncio.sleep(0.01)
    assert trace == ["inner:ok"]  # plain ones ran at once; the async one waits
    request.cancel()  # the request's task goes away: what is left still runs
    with pytest.raises(asyncio.CancelledError):
        await request
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert trace == ["inner:ok", "async", "outer:ok"]
    failures = [r for r in caplog.records if "on_finish callback failed" in r.getMessage()]
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == ["finalizer bug"]
    await ledger.run_finalizers()
    assert trace == ["inner:ok", "async", "outer:ok"]
