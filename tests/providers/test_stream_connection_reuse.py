"""Completed streams give their upstream connection back to the pool, even when the body ends late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import orjson
import pytest
from aiohttp import web

from omnigate.chat.models import OPENAI_CHAT, ChatStream, Credential, Target
from omnigate.chat.validate import parse_chat_request
from omnigate.gateway import streams
from omnigate.plugin.interfaces import Call
from omnigate.providers.anthropic import AnthropicProvider
from omnigate.providers.openai import OpenAIProvider
from omnigate.settings import parse_settings
from omnigate.testing.fakes import FakeAnthropic, FakeOpenAI, Reply
from tests.providers.test_openai import collect

KEYS = {"openai": "sk-test-0123456789abcdefghij", "anthropic": "sk-ant-test-0123456789abcdefghij"}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-test-1"}
HELLO = [{"role": "user", "content": "hello there"}]
END_DELAY_S = 0.05
#: More events than any reply here has: the fake sends them all, the terminal one too, then holds the body open.
NEVER_ENDS = 10_000


@attrs.frozen
class Upstream:
    """A provider against its fake; ``passthrough`` reads OpenAI events as an OpenAI client's relay does."""

    provider: OpenAIProvider | AnthropicProvider
    fake: FakeOpenAI | FakeAnthropic
    passthrough: str | None = None

    async def open_stream(self) -> ChatStream:
        return await open_stream(self.provider, self.passthrough)


@pytest.fixture(params=["openai", "openai-passthrough", "anthropic"])
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    name, _, passthrough = str(request.param).partition("-")
    fake = (FakeOpenAI if name == "openai" else FakeAnthropic)(api_key=KEYS[name])
    async with fake:
        provider = provider_for(name, fake.base_url)
        try:
            yield Upstream(provider, fake, OPENAI_CHAT if passthrough else None)
        finally:
            await provider.aclose()


def provider_for(name: str, base_url: str) -> OpenAIProvider | AnthropicProvider:
    if name == "openai":
        return OpenAIProvider(parse_settings({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": KEYS[name]}))
    return AnthropicProvider(
        parse_settings({"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": KEYS[name]})
    )


async def open_stream(
    provider: OpenAIProvider | AnthropicProvider, passthrough: str | None = None
) -> ChatStream:
    name = provider.name
    call = Call(
        request_id="t",
        principal=None,
        request=parse_chat_request({"model": MODELS[name], "messages": HELLO, "stream": True}),
        target=Target(name, MODELS[name]),
        deadline=time.monotonic() + 30,
        passthrough=passthrough,
    )
    result = await provider.send(call, Credential(api_key=KEYS[name], source="project"))
    assert isinstance(result, ChatStream)
    return result


async def drained(timeout_s: float = 5.0) -> None:
    """Wait until no background drain is running."""
    async with asyncio.timeout(timeout_s):
        while streams.DRAINS:
            await asyncio.gather(*streams.DRAINS, return_exceptions=True)


async def test_streams_whose_body_ends_late_reuse_the_connection(upstream: Upstream) -> None:
    fake = upstream.fake
    for _ in range(3):
        fake.enqueue(Reply.text("one two three", end_delay_s=END_DELAY_S))
        chunks = await collect(await upstream.open_stream())
        assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
        await drained()
    assert fake.connections == 1
    assert [r.completed for r in fake.requests] == [True] * 3


async def test_a_late_end_does_not_hold_back_the_stream(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.enqueue(Reply.text("one two three", end_delay_s=0.5))
    started = time.monotonic()
    await collect(await upstream.open_stream())
    assert time.monotonic() - started < 0.4
    assert not fake.requests[-1].completed, "the stream ended before the upstream's body did"


async def test_a_body_that_never_ends_is_closed_after_the_bound(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.enqueue(Reply.text("one two three", stall_after=NEVER_ENDS))
    started = time.monotonic()
    chunks = await collect(await upstream.open_stream())
    assert time.monotonic() - started < streams.DRAIN_TIMEOUT_S / 2, "the client's response waited"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    await fake.wait_disconnected(timeout_s=streams.DRAIN_TIMEOUT_S + 2)
    assert time.monotonic() - started >= streams.DRAIN_TIMEOUT_S * 0.9
    await drained()
    await collect(await upstream.open_stream())
    assert fake.connections == 2


async def test_closing_the_provider_ends_its_drains(upstream: Upstream) -> None:
    fake = upstream.fake
    fake.enqueue(Reply.text("one two three", stall_after=NEVER_ENDS))
    await collect(await upstream.open_stream())
    assert streams.DRAINS
    await upstream.provider.aclose()
    assert not streams.DRAINS, "closing the session closes the drained connection, which ends the drain"
    await fake.wait_disconnected(timeout_s=1)


async def test_a_body_that_keeps_coming_is_closed_past_the_byte_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams, "DRAIN_TIMEOUT_S", 30.0)
    gone = asyncio.Event()

    async def chatty(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(done_event())
        try:
            for _ in range(streams.DRAIN_MAX_BYTES // 1024 + 8):
                await asyncio.sleep(0.001)
                await response.write(b": " + b"x" * 1021 + b"\n")
            await asyncio.Event().wait()
        except (asyncio.CancelledError, ConnectionResetError):
            gone.set()
            raise
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chatty)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        provider = provider_for("openai", f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
        try:
            started = time.monotonic()
            await collect(await open_stream(provider))
            assert time.monotonic() - started < 1.0
            async with asyncio.timeout(5):
                await gone.wait()
            await drained()
        finally:
            await provider.aclose()
    finally:
        await runner.cleanup()


def done_event() -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
