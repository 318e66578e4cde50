"""OpenAI stream events relayed as they are to an OpenAI client, read only where they matter."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable

import aiohttp

from omnigate.chat.models import FinishReason, StreamChunk
from omnigate.errors import UpstreamError
from omnigate.gateway.sse import BLOCK_END, iter_event_blocks, parse_block
from omnigate.providers.openai_wire import StreamParser


def is_plain(block: bytes) -> bool:
    """An event that needs no reading: one compact ``data:`` line whose choice has not finished,
    without usage or an error.

    In JSON text a quote inside a string is escaped, so ``"finish_reason":null`` and ``"usage":null``
    can only be the keys themselves. Anything else (other spacing, other servers) is parsed: slower,
    never wrong. (``find``, not ``in``: see :mod:`omnigate.gateway.sse`.)
    """
    return (
        block.startswith(b"data: {")
        and block.find(b'"finish_reason":null') >= 0
        and (block.find(b'"usage"') < 0 or block.find(b'"usage":null') >= 0)
        and block.find(b'"error"') < 0
        and block.find(b"\n") < 0
    )


async def passthrough_chunks(
    provider: str,
    response: aiohttp.ClientResponse,
    parser: StreamParser,
    named: Callable[[str, str | None], None],
) -> AsyncGenerator[StreamChunk, None]:
    """The upstream's events of each read as one raw chunk, except usage and ``[DONE]``.

    Events are parsed up to the first one with a choice (it carries the completion id; Azure opens
    with a choice-less, id-less prelude, held back until then) and wherever :func:`is_plain` cannot
    vouch for them. An event with usage is not relayed: the parser keeps the usage for the one final
    chunk the surface renders (the client may not have asked for it), and the event's content, if
    any, is rendered from the parsed chunk. Errors raise after the events before them went out.
    ``named(id, model)`` is called once, before the first chunk.
    """
    blocks_of_reads = iter_event_blocks(response, provider)
    out: list[StreamChunk] = []
    held: list[bytes] = []
    finish: FinishReason | None = None
    unnamed = True
    async with contextlib.aclosing(blocks_of_reads):
        async for blocks in blocks_of_reads:
            for block in blocks:
                if parser.answering and is_plain(block):
                    held.append(block)
                    continue
                event = parse_block(block)
                if event is None:
                    continue
                usage = parser.usage
                try:
                    chunk = parser.feed(event.data)
                except UpstreamError:
                    for pending in _with_held(out, held, finish):
                        yield pending
                    raise
                if parser.done:
                    break
                if parser.usage is usage:
                    held.append(block)
                    if chunk is not None and chunk.finish_reason is not None:
                        finish = chunk.finish_reason
                elif chunk is not None:
                    out = _with_held(out, held, finish)
                    held, finish = [], None
                    out.append(chunk)
            if not parser.answering and not parser.done:
                continue  # the client's chunks must carry the completion id: wait for the first choice
            if unnamed:
                named(parser.id or "", parser.model)
                unnamed = False
            for pending in _with_held(out, held, finish):
                yield pending
            out, held, finish = [], [], None
            if parser.done:
                break
    for pending in _with_held(out, held, finish):
        yield pending
    final = parser.final()
    if final is not None:
        yield final


def _with_held(out: list[StreamChunk], held: list[bytes], finish: FinishReason | None) -> list[StreamChunk]:
    """``out`` followed by the held events as one raw chunk (if any are held)."""
    if held:
        out.append(StreamChunk(raw=BLOCK_END.join(held) + BLOCK_END, finish_reason=finish))
    return out
