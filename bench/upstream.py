"""A fast fake OpenAI upstream for benchmarks: fixed JSON and SSE bodies, nothing recorded, no parsing."""

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


def stream_events(chunks: int) -> list[bytes]:
    def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
        payload = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else [],
            **extra,
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": "word "}) for _ in range(chunks)]
    events.append(chunk({}, "stop"))
    events.append(
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": USAGE,
            }
        )
        + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    return events


def make_app(chunks: int) -> web.Application:
    body = completion_body()
    events = stream_events(chunks)

    async def chat(request: web.Request) -> web.StreamResponse:
        payload = await request.read()
        if b'"stream":true' not in payload.replace(b" ", b""):
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
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
