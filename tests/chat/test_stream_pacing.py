"""Stream pacing: events read in one burst leave in one send, and nothing is held while the reader waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.base_protocol import BaseProtocol

from omnigate.chat.models import ChatStream, StreamChunk, Usage
from omnigate.gateway.dispatch import _Relay
from omnigate.gateway.pacing import CURRENT_PACER, StreamPacer, before_upstream_wait, start_attempt
from omnigate.gateway.sse import iter_sse
from omnigate.policies.retry import prime_stream
from omnigate.surfaces.base import Reply
from omnigate.surfaces.openai import OpenAISurface
from omnigate.types import Message


class Ledger:
    """The two things the relay asks of the request's ledger."""

    def __init__(self) -> None:
        self.finished: tuple[str, int] | None = None

    def cost(self, usage: Usage | None) -> int | None:
        return None

    def finish(self, status: str, http_status: int, usage: Usage | None = None, **_: Any) -> None:
        self.finished = (status, http_status)


def bodies(sent: list[Message]) -> list[bytes]:
    return [m["body"] for m in sent if m["type"] == "http.response.body"]


def text_sends(sent_bodies: list[bytes]) -> list[bytes]:
    """The sends carrying model text (the opening role event carries none)."""
    return [b for b in sent_bodies if any(f'"content":"{w}"'.encode() in b for w in "abcd")]


def relay_for(sent: list[Message], pacer: StreamPacer | None = None) -> _Relay:
    async def send(message: Message) -> None:
        sent.append(message)

    reply = Reply(request_id="req_1", id="chat_1", model="m", provider="openai", created=0)
    return _Relay(OpenAISurface(), reply, send, pacer)


async def close() -> None:
    return None


async def test_a_burst_leaves_in_one_send_before_the_reader_waits_again() -> None:
    sent: list[Message] = []
    network = asyncio.Event()
    waiting = asyncio.Event()
    held_at_wait: list[list[bytes]] = []

    async def reader() -> AsyncGenerator[StreamChunk, None]:
        await before_upstream_wait()  # waits for the first read
        for word in ("a", "b", "c"):  # one read carried three events
            yield StreamChunk(text=word)
        await before_upstream_wait()
        held_at_wait.append(bodies(sent))
        waiting.set()
        await network.wait()
        yield StreamChunk(text="d", finish_reason="stop")

    relay = relay_for(sent)
    ledger = Ledger()
    run = asyncio.ensure_future(relay.run(ChatStream("chat_1", "m", reader(), close), None, [], ledger))  # type: ignore[arg-type]
    await asyncio.wait_for(waiting.wait(), 5)
    burst = text_sends(held_at_wait[0])
    assert len(burst) == 1  # a, b and c together, sent before the wait
    assert all(f'"content":"{w}"'.encode() in burst[0] for w in "abc")
    network.set()
    await run
    last = sent[-1]
    assert last["more_body"] is False and b'"content":"d"' in last["body"] and b"[DONE]" in last["body"]
    assert ledger.finished == ("ok", 200)


async def test_a_reader_that_never_says_it_waits_gets_every_event_sent_as_it_comes() -> None:
    sent: list[Message] = []

    async def reader() -> AsyncGenerator[StreamChunk, None]:
        for word in ("a", "b", "c"):
            yield StreamChunk(text=word)
            await asyncio.sleep(0)

    relay = relay_for(sent)
    await relay.run(ChatStream("chat_1", "m", reader(), close), None, [], Ledger())  # type: ignore[arg-type]
    assert len(text_sends(bodies(sent))) == 3


def buffered_response(words: str) -> SimpleNamespace:
    """An upstream response whose whole SSE body is already buffered (the usual case under load)."""
    loop = asyncio.get_running_loop()
    content = aiohttp.StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    for word in words:
        content.feed_data(f'data: {{"w":"{word}"}}\n\n'.encode())
    content.feed_eof()
    return SimpleNamespace(content=content)


def sse_stream(response: SimpleNamespace) -> ChatStream:
    async def reader() -> AsyncGenerator[StreamChunk, None]:
        async for event in iter_sse(response, "openai"):  # type: ignore[arg-type]
            yield StreamChunk(text=json.loads(event.data)["w"])

    return ChatStream("chat_1", "m", reader(), close)


async def test_a_body_already_buffered_at_the_first_read_leaves_in_one_send() -> None:
    sent: list[Message] = []
    await relay_for(sent).run(sse_stream(buffered_response("abc")), None, [], Ledger())  # type: ignore[arg-type]
    assert len(text_sends(bodies(sent))) == 1
    assert sent[-1]["more_body"] is False and b"[DONE]" in sent[-1]["body"]


async def test_a_body_read_whole_while_priming_still_leaves_in_one_send() -> None:
    """The endpoint installs the pacer before the first attempt, which reads the first chunk (priming)
    before the relay exists: that read must already count as the reader's promise."""
    pacer = StreamPacer()
    token = CURRENT_PACER.set(pacer)
    try:
        start_attempt()
        stream = await prime_stream(sse_stream(buffered_response("abc")))
        sent: list[Message] = []
        await relay_for(sent, pacer).run(stream, None, [], Ledger())  # type: ignore[arg-type]
    finally:
        CURRENT_PACER.reset(token)
    assert len(text_sends(bodies(sent))) == 1


async def test_each_attempt_starts_uncooperative() -> None:
    """A fallback to a reader that never promises is not held by the failed attempt's promise."""
    pacer = StreamPacer()
    token = CURRENT_PACER.set(pacer)
    try:
        await prime_stream(sse_stream(buffered_response("x")))
        assert pacer.cooperative
        start_attempt()
        assert not pacer.cooperative
    finally:
        CURRENT_PACER.reset(token)
