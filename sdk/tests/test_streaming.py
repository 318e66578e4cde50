"""Native chat streams: typed chunks, one terminal usage chunk, in-stream errors raised as typed errors."""

from __future__ import annotations

import httpx
import pytest

import omnigate_sdk as og
from omnigate_sdk._streaming import SSEDecoder
from tests.conftest import Driver, Script, error, sse, streamed

MESSAGES = [{"role": "user", "content": "hi"}]
BASE = {"id": "c1", "request_id": "req-stream", "model": "gpt-4o-mini", "provider": "openai"}


def delta(text: str) -> dict[str, object]:
    return {**BASE, "delta": {"content": text}, "finish_reason": None, "usage": None, "error": None}


TERMINAL = {
    **BASE,
    "delta": None,
    "finish_reason": "stop",
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9, "cached_tokens": 0},
    "cost_usd": 0.0000042,
    "cached": False,
    "fallback_used": False,
    "error": None,
}


async def test_deltas_then_the_terminal_chunk(gw: Driver, script: Script) -> None:
    script.queue(
        streamed(
            sse(delta("Hel"), delta("lo"), TERMINAL), headers={"x-budget-project-daily-remaining-usd": "4.5"}
        )
    )
    chunks, stream = await gw.stream(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)
    assert [c.text for c in chunks] == ["Hel", "lo", ""]
    assert all(isinstance(c, og.StreamChunk) for c in chunks)
    assert stream.text == "Hello" and stream.final_chunk is chunks[-1]
    assert stream.usage == og.ChatUsage(prompt_tokens=7, completion_tokens=2, total_tokens=9)
    assert chunks[-1].finish_reason == "stop" and chunks[-1].cost_usd == 0.0000042
    assert stream.request_id == "req-stream"
    assert stream.response_headers["x-budget-project-daily-remaining-usd"] == "4.5"
    sent = script.body()
    assert sent == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.2, "stream": True}
    assert script.last.headers["accept"] == "text/event-stream"


async def test_events_split_across_reads_with_crlf_and_comments(gw: Driver, script: Script) -> None:
    body = b": keep-alive\r\n\r\n" + sse(delta("a"), delta("b"), TERMINAL).replace(b"\n", b"\r\n")
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    script.queue(streamed(*pieces))
    chunks, stream = await gw.stream(model="gpt-4o-mini", messages=MESSAGES)
    assert stream.text == "ab" and len(chunks) == 3 and stream.usage is not None


async def test_tool_call_pieces_are_typed(gw: Driver, script: Script) -> None:
    first = {
        **BASE,
        "delta": {
            "content": None,
            "tool_calls": [{"index": 0, "id": "call_1", "name": "f", "arguments": ""}],
        },
    }
    second = {**BASE, "delta": {"content": None, "tool_calls": [{"index": 0, "arguments": '{"q": 1}'}]}}
    script.queue(streamed(sse(first, second, {**TERMINAL, "finish_reason": "tool_calls"})))
    chunks, _ = await gw.stream(
        model="gpt-4o-mini", messages=MESSAGES, tools=[{"type": "function", "function": {"name": "f"}}]
    )
    pieces = [tc for c in chunks if c.delta and c.delta.tool_calls for tc in c.delta.tool_calls]
    assert pieces[0].id == "call_1" and pieces[0].name == "f"
    assert "".join(p.arguments for p in pieces) == '{"q": 1}'
    assert chunks[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("error_type", "code", "cls", "status"),
    [
        ("upstream_error", "upstream_unavailable", og.InternalServerError, 502),
        ("upstream_error", "upstream_timeout", og.InternalServerError, 504),
        ("rate_limit_error", "rate_limit_exceeded", og.RateLimitError, 429),
        ("insufficient_quota", "budget_exceeded", og.BudgetExceededError, 429),
        ("invalid_request_error", "invalid_request", og.BadRequestError, 400),
    ],
)
async def test_an_error_chunk_raises_the_matching_typed_error(
    gw: Driver, script: Script, error_type: str, code: str, cls: type[og.APIStatusError], status: int
) -> None:
    broken = {
        **BASE,
        "error": {"message": "openai connection failed", "type": error_type, "code": code, "param": None},
    }
    script.queue(streamed(sse(delta("partial"), broken, done=False)))
    with pytest.raises(og.APIStatusError) as caught:
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)
    exc = caught.value
    assert type(exc) is cls and exc.status_code == status and exc.code == code
    assert exc.message == "openai connection failed" and exc.request_id == "req-stream"


async def test_a_stream_that_stops_before_its_terminal_chunk_is_a_connection_error(
    gw: Driver, script: Script
) -> None:
    script.queue(streamed(sse(delta("half an ans"), done=False)))
    with pytest.raises(og.APIConnectionError, match="final usage chunk"):
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)


async def test_a_connection_cut_mid_stream_is_a_connection_error(gw: Driver, script: Script) -> None:
    script.queue(streamed(sse(delta("a"), done=False), httpx.RemoteProtocolError("peer closed connection")))
    with pytest.raises(og.APIConnectionError, match="peer closed"):
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)
    script.queue(streamed(sse(delta("a"), done=False), httpx.ReadTimeout("no bytes for a while")))
    with pytest.raises(og.APITimeoutError):
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)


async def test_a_garbled_event_is_a_validation_error(gw: Driver, script: Script) -> None:
    script.queue(streamed(sse("{not json", done=False)))
    with pytest.raises(og.APIResponseValidationError, match="not a valid chunk"):
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)


async def test_an_error_status_before_the_stream_starts_raises_on_open(gw: Driver, script: Script) -> None:
    script.queue(error(401, "authentication_error", "invalid_api_key"))
    with pytest.raises(og.AuthenticationError):
        await gw.stream(model="gpt-4o-mini", messages=MESSAGES)


def test_until_done_reads_the_rest_and_closing_early_releases_the_response(
    client: og.Client, script: Script
) -> None:
    script.queue(streamed(sse(delta("a"), delta("b"), TERMINAL)))
    with client.chat.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        assert next(stream).text == "a"
        final = stream.until_done()
    assert final.usage is not None and final.usage.total_tokens == 9 and stream.text == "ab"
    script.queue(streamed(sse(delta("a"), delta("b"), TERMINAL)))
    stream = client.chat.stream(model="gpt-4o-mini", messages=MESSAGES)
    next(stream)
    stream.close()
    assert stream.response.is_closed
    assert list(stream) == []


async def test_async_until_done_and_early_close(aclient: og.AsyncClient, script: Script) -> None:
    script.queue(streamed(sse(delta("a"), TERMINAL)))
    async with await aclient.chat.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = await stream.until_done()
    assert final.finish_reason == "stop" and stream.text == "a" and stream.response.is_closed
    script.queue(streamed(sse(delta("a"), delta("b"), TERMINAL)))
    stream = await aclient.chat.stream(model="gpt-4o-mini", messages=MESSAGES)
    assert (await anext(stream)).text == "a"
    await stream.close()
    assert stream.response.is_closed


def test_the_decoder_joins_multi_line_data_and_ignores_other_fields() -> None:
    decoder = SSEDecoder()
    fed = [decoder.feed(line) for line in ["event: chunk", "id: 4", 'data: {"a":', "data: 1}", ""]]
    assert fed == [None, None, None, None, '{"a":\n1}']
    assert decoder.feed("") is None
    decoder.feed("data:tail")
    assert decoder.flush() == "tail" and decoder.flush() is None
