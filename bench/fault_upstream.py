"""The fake upstream with faults asked for in the request body: -fail500, -fail429, -break, -slow."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from bench.upstream import make_app, serve, stream_events

FAIL_500 = "-fail500"
FAIL_429 = "-fail429"
BREAK = "-break"  # the stream stops after a few events, without [DONE], and the connection drops
SLOW = "-slow"  # a stream paced at SLOW_EVENT_GAP_S per event, so a client can leave in the middle
SLOW_EVENT_GAP_S = 0.02
ERROR_BODY = b'{"error": {"message": "injected fault", "type": "server_error", "code": null}}'
RATE_LIMITED_BODY = b'{"error": {"message": "injected rate limit", "type": "rate_limit_error", "code": null}}'


def make_faulty_app(chunks: int) -> web.Application:
    events = stream_events(chunks)

    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        payload = await request.read()  # cached: the wrapped handler reads it again
        if FAIL_500.encode() in payload:
            return web.Response(status=500, body=ERROR_BODY, content_type="application/json")
        if FAIL_429.encode() in payload:
            return web.Response(
                status=429,
                body=RATE_LIMITED_BODY,
                content_type="application/json",
                headers={"retry-after-ms": "20"},
            )
        broken, slow = BREAK.encode() in payload, SLOW.encode() in payload
        if not (broken or slow):
            return await handler(request)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in events[:3] if broken else events:
            await response.write(event)
            if slow:
                await asyncio.sleep(SLOW_EVENT_GAP_S)
        if broken:
            assert request.transport is not None
            request.transport.abort()
        else:
            await response.write_eof()
        return response

    app = make_app(chunks)
    app.middlewares.append(inject_faults)
    return app


def main() -> None:
    serve(make_faulty_app, __doc__)


if __name__ == "__main__":
    main()
