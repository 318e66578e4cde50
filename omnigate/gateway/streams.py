"""The lifecycle of an open upstream stream, shared by every provider: relay, give back, or drop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import aiohttp

from omnigate.chat.models import ChatStream, StreamChunk
from omnigate.errors import UpstreamError


def relay_stream(
    response: aiohttp.ClientResponse, chunks: AsyncGenerator[StreamChunk, None], *, id: str, model: str
) -> ChatStream:
    """A ChatStream over ``chunks`` (the provider's translation of ``response``'s events).

    When ``chunks`` runs out, the stream completed and the connection goes back to the pool; when it
    raises or the stream is closed early, the connection is dropped, which is what makes the upstream
    stop generating. ``close()`` is idempotent and safe from another task. A stream closed before its
    first pull ends empty; one closed while being read raises UpstreamError on the next pull (a read
    pending at that moment fails on the closed socket), never a clean end.
    """
    closed = False

    async def relay() -> AsyncGenerator[StreamChunk, None]:
        if closed:
            return  # closed before anything was read: the caller ended it, nothing to relay
        complete = False
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
                    if closed:
                        raise UpstreamError("the stream was closed", code="upstream_stream_closed")
            complete = True
        finally:
            if complete:
                response.release()
            else:
                response.close()

    async def close() -> None:
        nonlocal closed
        closed = True
        response.close()  # idempotent in aiohttp

    return ChatStream(id=id, model=model, chunks=relay(), close=close)
