"""The floors omnigate is compared with: a raw aiohttp pass-through proxy, and a minimal Starlette app under
hypercorn (or uvicorn) forwarding with aiohttp. Both relay bytes as they come and do nothing else."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100")


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )


def aiohttp_proxy() -> web.Application:
    async def forward(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        body = await request.read()
        async with session.post(
            UPSTREAM + request.path, data=body, headers={"content-type": "application/json"}
        ) as up:
            response = web.StreamResponse(
                status=up.status, headers={"content-type": up.headers["content-type"]}
            )
            await response.prepare(request)
            async for piece in up.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app["session"] = new_session()
        yield
        await app["session"].close()

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/chat/completions", forward)
    return app


# What omnigate answers the bench's project with, beside the body's own headers: the contract's
# rate-limit and budget headers (RPM, TPM and four budgets set), the request id and x-omnigate-*; fixed
# values of the same lengths. `contract_app` sends them, so the server's cost of carrying them shows alone.
CONTRACT_HEADERS = {
    "cache-control": "no-store",
    "x-omnigate-provider": "openai",
    "x-omnigate-model": "gpt-4o-mini",
    "x-omnigate-fallback-used": "false",
    "x-ratelimit-limit-requests": "100000000",
    "x-ratelimit-remaining-requests": "99999999",
    "x-ratelimit-reset-requests": "16.289s",
    "x-ratelimit-limit-tokens": "1000000000",
    "x-ratelimit-remaining-tokens": "999999923",
    "x-ratelimit-reset-tokens": "16.289s",
    **{
        f"x-budget-{scope}-{period}-{kind}-usd": value
        for scope in ("org", "project")
        for period, limit in (("daily", "1000000.000000"), ("monthly", "10000000.000000"))
        for kind, value in (("limit", limit), ("remaining", limit[:-1] + "6"))
    },
    "x-request-id": "req_3b14e7dde985c60900000000b568dba2",
}
STREAM_HEADERS = {"x-accel-buffering": "no"}  # a stream's answer has no cost header; it has this one
JSON_HEADERS = {"x-omnigate-cost-usd": "0.000014"}


def starlette_proxy(contract_headers: bool = False) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    state: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: Request) -> Response:
        body = await request.body()
        upstream = await state["session"].post(
            UPSTREAM + request.url.path, data=body, headers={"content-type": "application/json"}
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for piece in upstream.content.iter_any():
                    yield piece
            finally:
                upstream.release()

        media_type = upstream.headers["content-type"]
        if not contract_headers:
            return StreamingResponse(relay(), status_code=upstream.status, media_type=media_type)
        if media_type.startswith("text/event-stream"):
            headers = CONTRACT_HEADERS | STREAM_HEADERS
            return StreamingResponse(
                relay(), status_code=upstream.status, media_type=media_type, headers=headers
            )
        # Sized, as omnigate answers JSON (h11 passes over a sized response's headers twice, a chunked one's four times).
        body = await upstream.read()
        upstream.release()
        headers = CONTRACT_HEADERS | JSON_HEADERS
        return Response(body, status_code=upstream.status, media_type=media_type, headers=headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["session"] = new_session()
        yield
        await state["session"].close()

    return Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])], lifespan=lifespan)


app = starlette_proxy()  # for `hypercorn bench.floors:app` / `uvicorn bench.floors:app`
contract_app = starlette_proxy(contract_headers=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["aiohttp"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(aiohttp_proxy(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
