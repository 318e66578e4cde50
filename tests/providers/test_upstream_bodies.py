"""Upstream bodies are read within bounds: an oversized answer is a broken upstream, not memory to hold."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from omnigate.errors import UpstreamError
from omnigate.gateway import upstream
from omnigate.gateway.upstream import error_from_response, read_body

BODY = b'{"choices": [{"message": {"content": "' + b"x" * 300 + b'"}}]}'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def sized(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BODY, content_type="application/json")


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "application/json"})
    await response.prepare(request)
    for start in range(0, len(BODY), 64):
        await response.write(BODY[start : start + 64])
    await response.write_eof()
    return response


async def compressed(request: web.Request) -> web.StreamResponse:
    # 300 bytes that decode to far more: the bound applies to what the body decodes to.
    bomb = gzip.compress(b"{" + b" " * 100_000 + b"}")
    return web.Response(body=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"})


@pytest.fixture
async def get() -> AsyncIterator[Callable[[Handler], Awaitable[aiohttp.ClientResponse]]]:
    servers: list[TestServer] = []
    async with aiohttp.ClientSession() as session:

        async def fetch(handler: Handler) -> aiohttp.ClientResponse:
            app = web.Application()
            app.router.add_get("/", handler)
            server = TestServer(app)
            await server.start_server()
            servers.append(server)
            return await session.get(server.make_url("/"))

        yield fetch
        for server in servers:
            await server.close()


@pytest.mark.parametrize("handler", [sized, chunked])
async def test_a_body_within_the_bound_is_read_whole(
    get: Callable[[Handler], Awaitable[aiohttp.ClientResponse]], handler: Handler
) -> None:
    assert await read_body("openai", await get(handler)) == BODY


@pytest.mark.parametrize("handler", [sized, chunked, compressed])
async def test_a_body_past_the_bound_is_a_bad_response(
    get: Callable[[Handler], Awaitable[aiohttp.ClientResponse]],
    handler: Handler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upstream, "MAX_BODY_BYTES", 200)
    with pytest.raises(UpstreamError) as caught:
        await read_body("openai", await get(handler))
    assert caught.value.code == "upstream_bad_response" and not caught.value.retryable


async def test_an_oversized_error_body_still_gives_the_status(
    get: Callable[[Handler], Awaitable[aiohttp.ClientResponse]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, body=b'{"error": {"message": "' + b"y" * 500 + b'"}}')

    monkeypatch.setattr(upstream, "MAX_ERROR_BODY_BYTES", 100)
    error = await error_from_response("openai", await get(failing))
    assert error.status_code == 503 and error.retryable
