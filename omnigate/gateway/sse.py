"""Byte-level server-sent events: parse an upstream's stream, and frame events for clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import attrs

from omnigate.gateway.pacing import iter_body
from omnigate.gateway.upstream import TRANSPORT_ERRORS, transport_error


@attrs.frozen
class SSEEvent:
    data: str
    event: str | None = None


async def iter_sse(response: aiohttp.ClientResponse, provider: str) -> AsyncIterator[SSEEvent]:
    """Events as they arrive (LF or CRLF line endings; comments skipped; multi-line data joined).

    A transport failure mid-stream raises a non-retryable UpstreamError; an event left unterminated
    when the body ends is still delivered (Gemini ends streams by closing).
    """
    buffer = b""
    data_lines: list[str] = []
    event_name: str | None = None
    try:
        async for piece in iter_body(response):
            buffer += piece
            while True:
                line, separator, rest = _split_line(buffer)
                if not separator:
                    break
                buffer = rest
                event = _feed(line, data_lines, event_name)
                if isinstance(event, SSEEvent):
                    yield event
                    data_lines, event_name = [], None
                elif isinstance(event, str):
                    event_name = event
    except TRANSPORT_ERRORS as exc:
        raise transport_error(provider, exc, started=True) from None
    if buffer.strip():
        event = _feed(buffer, data_lines, event_name)
        if isinstance(event, str):
            event_name = event
    if data_lines:
        yield SSEEvent("\n".join(data_lines), event_name)


def _split_line(buffer: bytes) -> tuple[bytes, bytes, bytes]:
    # Providers end lines with LF or CRLF; a lone CR (allowed by the SSE spec) is not used by any.
    index = buffer.find(b"\n")
    if index < 0:
        return buffer, b"", b""
    return buffer[:index].rstrip(b"\r"), b"\n", buffer[index + 1 :]


def _feed(raw: bytes, data_lines: list[str], event_name: str | None) -> SSEEvent | str | None:
    """Apply one line; returns a finished event on a blank line, a new event name, or None."""
    line = raw.decode("utf-8", "replace")
    if not line:
        if data_lines:
            return SSEEvent("\n".join(data_lines), event_name)
        return None
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
