"""Byte-level server-sent events: parse an upstream's stream, and frame events for clients."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
import attrs

from omnigate.gateway.pacing import iter_body
from omnigate.gateway.upstream import TRANSPORT_ERRORS, bad_response, transport_error

# Byte tests use ``find``, not ``in``: ``part in data`` first tries ``part`` as an integer and pays for a
# formatted TypeError on every call (~2k instructions; it showed as 8 % of a relayed stream's cost).
BLOCK_END = b"\n\n"
# One event larger than this is a broken upstream, not an answer (Gemini's inline images are a few MB).
MAX_EVENT_BYTES = 16 * 1024 * 1024


@attrs.frozen
class SSEEvent:
    data: str
    event: str | None = None


async def iter_sse(response: aiohttp.ClientResponse, provider: str) -> AsyncIterator[SSEEvent]:
    """Events one by one (see :func:`iter_sse_batches`)."""
    async for batch in iter_sse_batches(response, provider):
        for event in batch:
            yield event


async def iter_sse_batches(response: aiohttp.ClientResponse, provider: str) -> AsyncIterator[list[SSEEvent]]:
    """The events completed by each read, as they arrive (comments skipped; multi-line data joined);
    never an empty list.

    A read under load often holds a whole answer: handing its events over together saves the readers a
    generator round trip per event.
    """
    async for blocks in iter_event_blocks(response, provider):
        batch = [event for event in map(parse_block, blocks) if event is not None]
        if batch:
            yield batch


async def iter_event_blocks(
    response: aiohttp.ClientResponse, provider: str
) -> AsyncGenerator[list[bytes], None]:
    """The raw event blocks (the lines of one event, without the blank line ending it) completed by
    each read, as they arrive; never an empty list.

    CRLF line endings are read as LF (a lone CR, allowed by the SSE spec, is used by no provider). A
    transport failure mid-stream, or an event growing past ``MAX_EVENT_BYTES`` (memory is not the
    upstream's to take), raises a non-retryable UpstreamError; an event left unterminated when the body
    ends is still delivered (Gemini ends streams by closing).
    """
    buffer = b""
    try:
        async for piece in iter_body(response):
            buffer += piece
            if buffer.find(b"\r") >= 0:
                buffer = buffer.replace(b"\r\n", b"\n")  # a CR ending a read waits for its LF
            end = buffer.rfind(BLOCK_END)
            if end < 0:
                if len(buffer) > MAX_EVENT_BYTES:
                    raise bad_response(provider, f"a stream event larger than {MAX_EVENT_BYTES} bytes")
                continue
            complete, buffer = buffer[:end], buffer[end + 2 :]
            blocks = [block for block in complete.split(BLOCK_END) if block.strip(b"\n")]
            if blocks:
                yield blocks
    except TRANSPORT_ERRORS as exc:
        raise transport_error(provider, exc, started=True) from None
    if buffer.strip():
        yield [buffer.rstrip(b"\r\n")]


def parse_block(block: bytes) -> SSEEvent | None:
    """One event block's event; None for a block without data (comments only, or a name alone)."""
    if block.startswith(b"data: ") and block.find(b"\n") < 0:  # OpenAI's and Gemini's events
        return SSEEvent(block[6:].decode("utf-8", "replace"))
    if block.startswith(b"event: "):  # Anthropic's: a name line, then one data line
        name, _, data = block[7:].partition(b"\n")
        if data.startswith(b"data: ") and data.find(b"\n") < 0 and name.find(b"\r") < 0:
            return SSEEvent(data[6:].decode("utf-8", "replace"), name.decode("utf-8", "replace"))
    data_lines: list[str] = []
    event_name: str | None = None
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data_lines.append(value)
        elif field == "event":
            event_name = value
    return SSEEvent("\n".join(data_lines), event_name) if data_lines else None


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE event as bytes: optional ``event:`` line, ``data:`` line, blank line."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + BLOCK_END
