"""Fault scripting, timing, recording and disconnect tracking of the fakes (raw aiohttp client)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from omnigate.testing.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, RecordedRequest, Reply, Usage

USER = [{"role": "user", "content": "hi"}]
HEADERS = {"Authorization": "Bearer k"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _chat(fake: FakeOpenAI, *, stream: bool = True) -> tuple[str, dict[str, object]]:
    return f"{fake.base_url}/chat/completions", {"model": "m", "messages": USER, "stream": stream}


async def test_chunk_delay_spreads_events(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.enqueue(Reply.text("a b c d e", chunk_delay_s=0.05))
    url, body = _chat(openai_fake)
    arrivals: list[float] = []
    sent_when_first_arrived = None
    start = time.monotonic()
    async with session.post(url, json=body, headers=HEADERS) as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic() - start)
                if sent_when_first_arrived is None:
                    sent_when_first_arrived = openai_fake.requests[0].events_sent
    total = openai_fake.requests[0].events_sent
    assert total == len(arrivals) == 8  # role, 5 words, finish, [DONE]
    assert sent_when_first_arrived is not None and sent_when_first_arrived < total
    assert arrivals[0] < 0.2 and arrivals[-1] - arrivals[0] >= 7 * 0.05 * 0.9
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 0.03


async def test_delay_before_headers(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.enqueue(Reply.text("x", delay_s=0.2))
    url, body = _chat(openai_fake, stream=False)
    start = time.monotonic()
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert time.monotonic() - start >= 0.19
        assert (await resp.json())["choices"][0]["message"]["content"] == "x"


async def test_client_disconnect_mid_stream_is_recorded(
    openai_fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    openai_fake.enqueue(Reply.text(" ".join(["w"] * 50), chunk_delay_s=0.05))
    url, body = _chat(openai_fake)
    async with session.post(url, json=body, headers=HEADERS) as resp:
        await resp.content.readline()
        resp.close()
    await openai_fake.wait_disconnected(timeout_s=2)
    (record,) = openai_fake.requests
    assert record.disconnected and not record.completed and record.usage is None
    assert record.events_sent < 50
    await openai_fake.wait_idle()
    assert openai_fake.in_flight == 0


@pytest.mark.parametrize("stream", [True, False])
async def test_disconnect_while_hanging_or_delayed(
    anthropic_fake: FakeAnthropic, session: aiohttp.ClientSession, stream: bool
) -> None:
    anthropic_fake.enqueue(Reply.text("x", hang=True), Reply.text("y", delay_s=10))
    url = f"{anthropic_fake.base_url}/v1/messages"
    body = {"model": "c", "max_tokens": 5, "messages": USER, "stream": stream}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    for expected in (1, 2):
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=0.2)
            ):
                pass
        await anthropic_fake.wait_disconnected(expected, timeout_s=2)
    assert [r.disconnected for r in anthropic_fake.requests] == [True, True]
    assert all(r.status is None for r in anthropic_fake.requests)


async def test_stall_after_keeps_connection_silent(
    gemini_fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    gemini_fake.enqueue(Reply.text("a b c", stall_after=1))
    url = f"{gemini_fake.base_url}/v1beta/models/g:streamGenerateContent?alt=sse&key=k"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    async with session.post(url, json=body) as resp:
        assert (await resp.content.readline()).startswith(b"data: ")
        assert await resp.content.readline() == b"\r\n"
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.2):
                await resp.content.readline()
        assert gemini_fake.requests[0].events_sent == 1


async def test_stall_after_non_stream_sends_headers_only(
    openai_fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    openai_fake.enqueue(Reply.text("never", stall_after=0))
    url, body = _chat(openai_fake, stream=False)
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert resp.status == 200 and int(resp.headers["Content-Length"]) > 0
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.2):
                await resp.read()
    await openai_fake.wait_disconnected(timeout_s=2)


async def test_close_with_hung_request_is_fast_and_not_a_disconnect(session: aiohttp.ClientSession) -> None:
    fake = FakeOpenAI()
    await fake.start()
    fake.set_default(Reply.error(500, "never sent", hang=True))
    url, body = _chat(fake)
    pending = asyncio.ensure_future(session.post(url, json=body, headers=HEADERS))
    await fake.wait_for_requests(1)
    start = time.monotonic()
    await fake.close()
    assert time.monotonic() - start < 1.0
    with pytest.raises(aiohttp.ClientError):
        await pending
    assert fake.disconnects == 0 and not fake.requests[0].disconnected


async def test_raw_reply_and_non_stream_cut(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.enqueue(
        Reply.raw(200, "<html>bad gateway</html>", content_type="text/html", headers={"x-extra": "1"}),
        Reply.raw(200, b'{"id": "x", "choices": []}', cut_after=0),
    )
    url, body = _chat(openai_fake, stream=False)
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert resp.headers["Content-Type"] == "text/html" and resp.headers["x-extra"] == "1"
        assert await resp.read() == b"<html>bad gateway</html>"
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert int(resp.headers["Content-Length"]) == 26
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert openai_fake.requests[1].cut


async def test_recording_connections_and_ledger(
    openai_fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    openai_fake.enqueue(
        Reply.text("a", usage=Usage(input=1, output=2)), Reply.text("b", usage=Usage(input=3, output=4))
    )
    url, body = _chat(openai_fake)
    for _ in range(2):
        async with session.post(url + "?trace=1", json=body, headers={**HEADERS, "X-Custom": "Yes"}) as resp:
            await resp.read()
    assert openai_fake.connections == 1  # keep-alive reuse after a cleanly ended stream
    first = openai_fake.requests[0]
    assert (first.method, first.path, first.query) == ("POST", "/v1/chat/completions", {"trace": "1"})
    assert first.headers["x-custom"] == "Yes" and first.json == body and orjson.loads(first.body) == body
    assert first.stream and first.status == 200 and first.completed
    assert openai_fake.billed == Usage(input=4, output=6)
    async with aiohttp.ClientSession() as other:
        async with other.post(url, json=body, headers=HEADERS) as resp:
            await resp.read()
    assert openai_fake.connections == 2


async def test_default_function_and_reset(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    def by_header(record: RecordedRequest) -> Reply:
        return Reply.error(503, "down") if record.headers.get("x-fail") else Reply.text("up")

    openai_fake.set_default(by_header)
    url, body = _chat(openai_fake, stream=False)
    async with session.post(url, json=body, headers={**HEADERS, "x-fail": "1"}) as resp:
        assert resp.status == 503
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert (await resp.json())["choices"][0]["message"]["content"] == "up"
    openai_fake.enqueue(Reply.text("queued"))
    openai_fake.reset()
    assert openai_fake.requests == [] and openai_fake.pending == 0
    async with session.post(url, json=body, headers=HEADERS) as resp:
        assert (await resp.json())["choices"][0]["message"]["content"] == "echo: hi"


async def test_explicit_stream_chunks(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.enqueue(Reply.text(["Zaż", "ółć ", "🙂"]))
    url, body = _chat(openai_fake)
    async with session.post(url, json=body, headers=HEADERS) as resp:
        raw = await resp.read()
    docs = [orjson.loads(e[6:]) for e in raw.split(b"\n\n")[1:-3]]
    assert [d["choices"][0]["delta"]["content"] for d in docs] == ["Zaż", "ółć ", "🙂"]


async def test_command_line_runner() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "omnigate.testing.fakes", "anthropic", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
            body = {"model": "c", "max_tokens": 5, "messages": USER}
            async with session.post(f"{base_url}/v1/messages", json=body, headers=headers) as resp:
                assert (await resp.json())["content"][0]["text"] == "echo: hi"
    finally:
        proc.terminate()
        await proc.wait()


async def test_restart_on_same_port_and_refused_while_down(session: aiohttp.ClientSession) -> None:
    fake = FakeOpenAI()
    base_url = await fake.start()
    port = fake.port
    await fake.close()
    url, body = f"{base_url}/chat/completions", {"model": "m", "messages": USER}
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.post(url, json=body, headers=HEADERS):
            pass
    assert await fake.start() == base_url and fake.port == port
    try:
        async with session.post(url, json=body, headers=HEADERS) as resp:
            assert resp.status == 200
    finally:
        await fake.close()


def test_public_names() -> None:
    import omnigate.testing as testing
    import omnigate.testing.fakes as fakes

    assert set(testing.__all__) <= set(fakes.__all__)
    for name in fakes.__all__:
        assert getattr(fakes, name) is not None
    assert set(fakes.FAKES) == {"openai", "azure", "anthropic", "gemini"}


async def test_max_records_trims_history(openai_fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    openai_fake.max_records = 2
    url, body = _chat(openai_fake, stream=False)
    for _ in range(7):
        async with session.post(url, json=body, headers=HEADERS) as resp:
            await resp.read()
    assert openai_fake.request_count == 7
    assert 2 <= len(openai_fake.requests) <= 4
