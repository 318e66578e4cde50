"""Stream pacing: the relay holds rendered events while more are already buffered, and sends them when the reader would wait."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp


async def _nothing_held() -> None:
    return None


class StreamPacer:
    """One per streamed request, installed before its first attempt; the relay binds ``flush``.

    A reader that reads through :func:`iter_body` (or calls :func:`before_upstream_wait` right before
    it blocks on the network) marks the attempt cooperative; from then on the relay may hold events
    and send them in one piece, because the reader promises to flush before any wait. A reader that
    never does (a plugin reading the body its own way) gets every event sent as it comes. Each attempt
    starts uncooperative, so a fallback to such a reader is not held by its predecessor's promise.
    """

    def __init__(self, flush: Callable[[], Awaitable[None]] = _nothing_held) -> None:
        self.flush = flush
        self.cooperative = False


CURRENT_PACER: contextvars.ContextVar[StreamPacer | None] = contextvars.ContextVar(
    "omnigate_stream_pacer", default=None
)


def start_attempt() -> None:
    """Called as each upstream attempt begins: its reader has promised nothing yet."""
    pacer = CURRENT_PACER.get()
    if pacer is not None:
        pacer.cooperative = False


async def before_upstream_wait() -> None:
    """Readers call this just before awaiting upstream bytes: whatever the relay holds goes out now."""
    pacer = CURRENT_PACER.get()
    if pacer is not None:
        pacer.cooperative = True
        await pacer.flush()


async def iter_body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response body in pieces as they arrive, flushing the relay before every wait."""
    content = response.content
    while True:
        piece = content.read_nowait()
        if piece:
            # Cooperative from its first piece, not only from its first wait: a body already buffered
            # whole (the usual case under load) would otherwise go out one event per send.
            pacer = CURRENT_PACER.get()
            if pacer is not None:
                pacer.cooperative = True
        else:
            if content.at_eof():
                return
            await before_upstream_wait()
            piece = await content.readany()
            if not piece:
                return
        yield piece
