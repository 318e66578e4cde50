"""The SSE reader: lines split anywhere across reads, LF or CRLF, comments, event names, multi-line data."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from omnigate.errors import UpstreamError
from omnigate.gateway import sse
from omnigate.gateway.sse import SSEEvent, iter_sse, iter_sse_batches
from tests.chat.conftest import Pieces


async def events(*pieces: bytes) -> list[SSEEvent]:
    response = SimpleNamespace(content=Pieces(*pieces))
    return [event async for event in iter_sse(response, "openai")]  # type: ignore[arg-type]


async def test_lines_split_anywhere_across_reads() -> None:
    assert await events(b"data: a", b"bc\r\n\r", b"\ndata: d\n", b"\n") == [SSEEvent("abc"), SSEEvent("d")]


async def test_event_names_multi_line_data_and_comments() -> None:
    body = b": keep-alive\n\nevent: delta\ndata: 1\ndata: 2\n\nevent: ignored-without-data\n\ndata: x\r\n\r\n"
    assert await events(body) == [SSEEvent("1\n2", "delta"), SSEEvent("x")]


async def test_an_unterminated_last_event_is_still_delivered() -> None:
    assert await events(b"data: one\n\ndata: tw", b"o") == [SSEEvent("one"), SSEEvent("two")]


async def test_many_events_in_one_read() -> None:
    body = b"".join(f"data: {i}\n\n".encode() for i in range(50))
    assert [e.data for e in await events(body)] == [str(i) for i in range(50)]


async def test_batches_hold_the_events_each_read_completed() -> None:
    response = SimpleNamespace(
        content=Pieces(b"data: 1\n\ndata: 2\n\ndata: 3", b"\n", b"\ndata:4\r\n\r\n: ping\n\n", b"data: 5")
    )
    batches = [batch async for batch in iter_sse_batches(response, "openai")]  # type: ignore[arg-type]
    # The second read completes no event and the comment dispatches none: neither gives an empty batch.
    assert batches == [[SSEEvent("1"), SSEEvent("2")], [SSEEvent("3"), SSEEvent("4")], [SSEEvent("5")]]


async def test_a_data_line_without_the_space_or_with_a_crlf_reads_the_same() -> None:
    assert await events(b"data:x\r\n\r\ndata: y\r\ndata:  z\r\n\r\n") == [SSEEvent("x"), SSEEvent("y\n z")]


async def test_an_event_that_never_ends_is_a_broken_upstream_not_a_memory_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1000)
    assert [e.data for e in await events(b"data: " + b"x" * 990 + b"\n\n")] == ["x" * 990]
    with pytest.raises(UpstreamError) as caught:
        await events(b"data: ok\n\n", b"data: " + b"y" * 600, b"y" * 600)
    assert caught.value.code == "upstream_bad_response" and not caught.value.retryable


async def test_a_named_event_reads_the_same_on_every_path() -> None:
    named = (
        b"event: content_block_delta\ndata: {}\n\nevent: x\r\ndata: 1\r\ndata: 2\r\n\r\nevent: \ndata: y\n\n"
    )
    assert await events(named) == [
        SSEEvent("{}", "content_block_delta"),
        SSEEvent("1\n2", "x"),
        SSEEvent("y", ""),
    ]
