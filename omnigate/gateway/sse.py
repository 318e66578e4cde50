"""Byte-level server-sent events: parse an upstream's stream, and frame events for clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import attrs

from omnigate.gateway.pacing import iter_body
from omnigate.gateway.upstream import TRANSPORT_ERRORS, transport_error

_BLANK = (b"", b"\r")


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
    """The events completed by each read, as they arrive (LF or CRLF line endings; comments skipped;
    multi-line data joined); never an empty list.

    A read under load often holds a whole answer: handing its events over together saves the readers a
    generator round trip per event. A transport failure mid-stream raises a non-retryable
    UpstreamError; an event left unterminated when the body ends is still delivered (Gemini ends
    streams by closing).
    """
    buffer = b""
    data_lines: list[str] = []
    event_name: str | None = None
    try:
        async for piece in iter_body(response):
            buffer += piece
            if b"\n" not in piece:
                continue
            # Providers end lines with LF or CRLF; a lone CR (allowed by the SSE spec) is not used by any.
            *lines, buffer = buffer.split(b"\n")
            batch: list[SSEEvent] = []
            for line in lines:
                if line in _BLANK:  # dispatch; a name without data is dropped too (the SSE spec)
                    if data_lines:
                        batch.append(SSEEvent("\n".join(data_lines), event_name))
                    data_lines, event_name = [], None
                else:
                    name = _feed(line.rstrip(b"\r"), data_lines)
                    if name is not None:
                        event_name = name
            if batch:
                yield batch
    except TRANSPORT_ERRORS as exc:
        raise transport_error(provider, exc, started=True) from None
    if buffer.strip():
        name = _feed(buffer.rstrip(b"\r"), data_lines)
        if name is not None:
            event_name = name
    if data_lines:
        yield [SSEEvent("\n".join(data_lines), event_name)]


def _feed(raw: bytes, data_lines: list[str]) -> str | None:
    """Apply one non-blank line: a data line is collected; an ``event:`` line returns the new name."""
    if raw.startswith(b"data: "):  # nearly every line a provider sends: no general parse
        data_lines.append(raw[6:].decode("utf-8", "replace"))
        return None
    line = raw.decode("utf-8", "replace")
    if line.startswith(":"):
        return None
    field, _, value = line.partition(":")
    value = value[1:] if value.startswith(" ") else value
    if field == "data":
        data_lines.append(value)
    elif field == "event":
        return value
    return None


def frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE event as bytes: optional ``event:`` line, ``data:`` line, blank line."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"
