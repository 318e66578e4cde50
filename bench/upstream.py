"""A fast fake OpenAI (and Anthropic) upstream for benchmarks: fixed JSON and SSE bodies, nothing recorded,
no parsing. The Anthropic Messages route measures a translated answer (the OpenAI one is relayed)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

import orjson
from aiohttp import web

USAGE = {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "word " * 20},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def stream_event(delta: dict[str, object] | None, finish: str | None = None, **extra: object) -> bytes:
    """One `chat.completion.chunk` event; ``delta=None`` gives the choice-less usage chunk."""
    payload = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
        **extra,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def stream_events(chunks: int) -> list[bytes]:
    events = [stream_event({"role": "assistant", "content": ""})]
    events += [stream_event({"content": "word "}) for _ in range(chunks)]
    events.append(stream_event({}, "stop"))
    events.append(stream_event(None, usage=USAGE))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_event(name: str, payload: dict[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"


def anthropic_events(chunks: int) -> list[bytes]:
    """A Messages stream of ``chunks`` text deltas with its usage, as Anthropic frames it."""
    usage = {"input_tokens": USAGE["prompt_tokens"], "output_tokens": 1}
    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-bench",
    }
    events = [anthropic_event("message_start", {"message": {**message, "stop_reason": None, "usage": usage}})]
    events.append(
        anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    )
    delta = anthropic_event(
        "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "word "}}
    )
    events += [delta] * chunks
    events.append(anthropic_event("content_block_stop", {"index": 0}))
    final = {"output_tokens": USAGE["completion_tokens"]}
    events.append(anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": final}))
    events.append(anthropic_event("message_stop", {}))
    return events


def anthropic_body() -> bytes:
    return orjson.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-bench",
            "content": [{"type": "text", "text": "word " * 20}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": USAGE["prompt_tokens"], "output_tokens": USAGE["completion_tokens"]},
        }
    )


async def paced_stream(request: web.Request, chunks: int, pace_s: float) -> web.StreamResponse:
    """Content events ``pace_s`` apart, each text stamped with its send time (``@<ns since the epoch>``),
    so a client can time how long every event took to reach it (the relay mode of the load generator)."""
    events = stream_events(chunks)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(events[0])
    for _ in range(chunks):
        await asyncio.sleep(pace_s)
        await response.write(stream_event({"content": f"@{time.time_ns()} "}))
    for event in events[-3:]:
        await response.write(event)
    await response.write_eof()
    return response


async def canned(
    request: web.Request, payload: bytes, body: bytes, events: list[bytes]
) -> web.StreamResponse:
    """The fixed JSON body, or the fixed events when the request asked for a stream."""
    if b'"stream":true' not in payload.replace(b" ", b""):
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for event in events:
        await response.write(event)
    await response.write_eof()
    return response


def make_app(chunks: int) -> web.Application:
    body, events = completion_body(), stream_events(chunks)
    translated, translated_events = anthropic_body(), anthropic_events(chunks)

    async def chat(request: web.Request) -> web.StreamResponse:
        payload = await request.read()
        if b'"bench_pace_ms"' in payload:  # passes through a gateway: unknown fields are forwarded
            return await paced_stream(request, chunks, orjson.loads(payload)["bench_pace_ms"] / 1000)
        return await canned(request, payload, body, events)

    async def messages(request: web.Request) -> web.StreamResponse:
        return await canned(request, await request.read(), translated, translated_events)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    return app


def serve(build: Callable[[int], web.Application], description: str | None) -> None:
    """Command line of a fake upstream: ``--port`` and ``--chunks``, served on uvloop when installed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build(args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)


def main() -> None:
    serve(make_app, __doc__)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
