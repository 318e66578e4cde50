"""The lifecycle of an open upstream stream, shared by every provider: relay, give back, or drop."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncGenerator

import aiohttp

from omnigate.chat.models import ChatStream, StreamChunk
from omnigate.errors import UpstreamError

# Readers stop at the protocol's end event; the HTTP body's own end (the chunked ``0\r\n\r\n``) can
# trail it by a write or a round trip, and aiohttp closes rather than pools a connection whose body has
# not ended. Waiting for it costs only an idle socket, never the client (its end events are not held):
# 1 s covers a slow round trip with margin, and a body that never ends holds its socket no longer.
DRAIN_TIMEOUT_S = 1.0
# What legitimately follows the end event is a few bytes (the event's blank line, a keep-alive comment);
# past one small read's worth the upstream is still producing, and closing is cheaper than reading on.
DRAIN_MAX_BYTES = 64 * 1024
#: Drains running now, each in an empty context (holding nothing of its request but the response). Strong
#: references (the loop keeps weak ones); each removes itself when done, and closing its session ends it.
DRAINS: set[asyncio.Task[None]] = set()


def relay_stream(
    response: aiohttp.ClientResponse, chunks: AsyncGenerator[StreamChunk, None], *, id: str, model: str
) -> ChatStream:
    """A ChatStream over ``chunks`` (the provider's translation of ``response``'s events).

    When ``chunks`` runs out, the stream completed and the connection goes back to the pool (see
    :func:`give_back`); when it raises or the stream is closed early, the connection is dropped, which
    is what makes the upstream stop generating. ``close()`` is idempotent and safe from another task;
    after completion it leaves the connection alone. A stream closed before its first pull ends empty;
    one closed while being read raises UpstreamError on the next pull (a read pending at that moment
    fails on the closed socket), never a clean end.
    """
    closed = False
    complete = False

    async def relay() -> AsyncGenerator[StreamChunk, None]:
        nonlocal complete
        if closed:
            return  # closed before anything was read: the caller ended it, nothing to relay
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
                    if closed:
                        raise UpstreamError("the stream was closed", code="upstream_stream_closed")
            complete = True
        finally:
            if complete:
                give_back(response)
            else:
                response.close()

    async def close() -> None:
        nonlocal closed
        closed = True
        if not complete:
            response.close()  # idempotent in aiohttp

    return ChatStream(id=id, model=model, chunks=relay(), close=close)


def give_back(response: aiohttp.ClientResponse) -> None:
    """Pool a completed stream's connection now if its body has ended, else after a background drain."""
    if response.content.is_eof():
        response.release()
        return
    task = asyncio.get_running_loop().create_task(_drain(response), context=contextvars.Context())
    DRAINS.add(task)
    task.add_done_callback(DRAINS.discard)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Discard the rest of a completed body within the bounds; pool the connection at its end, else close it."""
    try:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await _discard(response.content, DRAIN_MAX_BYTES)
    finally:
        if response.content.is_eof():
            response.release()
        else:
            response.close()


async def _discard(content: aiohttp.StreamReader, limit: int) -> None:
    """Read and drop ``content`` up to its end, or until more than ``limit`` bytes were read."""
    while limit >= 0 and (piece := await content.readany()):
        limit -= len(piece)
