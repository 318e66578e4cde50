"""A scripted ``httpx.MockTransport``: queued answers (or exceptions), recorded requests, recorded sleeps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from omnigate_sdk import AsyncClient, Client

BASE_URL = "http://gateway.test"
API_KEY = "og-test-project-key"
ADMIN_KEY = "admin-test-key"

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def envelope(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error(status: int, type_: str = "api_error", code: str | None = None, **headers: str) -> httpx.Response:
    body = envelope(f"failure {status}", type_, code)
    return httpx.Response(status, json=body, headers={"x-request-id": "req-err", **headers})


def ok(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=payload, headers={"x-request-id": "req-ok", **(headers or {})})


def sse(*events: Any, done: bool = True) -> bytes:
    """An SSE body: one ``data:`` event per object (strings are sent verbatim), then ``[DONE]``."""
    parts = [f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in events]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


class _Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered in the given pieces; an exception among them is raised at that point."""

    def __init__(self, pieces: list[bytes | Exception]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece


def streamed(*pieces: bytes | Exception, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", "x-request-id": "req-stream", **(headers or {})},
        stream=_Pieces(list(pieces)),
    )


class Script:
    """Answers requests in order from a queue and records each request; ``sleeps`` records retry waits."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def queue(self, *answers: Answer) -> Script:
        self.answers.extend(answers)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        return self.handle(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def script() -> Script:
    return Script()


def make_sync(script: Script, **options: Any) -> Client:
    settings: dict[str, Any] = {"api_key": API_KEY, "admin_key": ADMIN_KEY, "base_url": BASE_URL}
    client = Client(**{**settings, **options}, transport=httpx.MockTransport(script.handle))
    client._sleep = script.sleeps.append  # type: ignore[method-assign,assignment]
    return client


def make_async(script: Script, **options: Any) -> AsyncClient:
    settings: dict[str, Any] = {"api_key": API_KEY, "admin_key": ADMIN_KEY, "base_url": BASE_URL}
    client = AsyncClient(**{**settings, **options}, transport=httpx.MockTransport(script.ahandle))

    async def record(seconds: float) -> None:
        script.sleeps.append(seconds)

    client._sleep = record  # type: ignore[method-assign]
    return client


@pytest.fixture
def client(script: Script) -> Iterator[Client]:
    with make_sync(script) as client:
        yield client


@pytest.fixture
async def aclient(script: Script) -> AsyncIterator[AsyncClient]:
    async with make_async(script) as client:
        yield client


class Driver:
    """Runs one test body against the sync or the async client: ``await gw(lambda c: c.models.list())``."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self.client = client
        self.is_async = isinstance(client, AsyncClient)

    async def __call__(self, action: Callable[[Any], Any]) -> Any:
        result = action(self.client)
        return await result if self.is_async else result

    async def stream(self, **params: Any) -> tuple[list[Any], Any]:
        """Open a chat stream, read it to the end, and return its chunks and the stream object."""
        if isinstance(self.client, AsyncClient):
            astream = await self.client.chat.stream(**params)
            async with astream:
                return [chunk async for chunk in astream], astream
        with self.client.chat.stream(**params) as stream:
            return list(stream), stream


@pytest.fixture(params=["sync", "async"])
async def gw(request: pytest.FixtureRequest, script: Script) -> AsyncIterator[Driver]:
    if request.param == "sync":
        with make_sync(script) as client:
            yield Driver(client)
    else:
        async with make_async(script) as aclient:
            yield Driver(aclient)


def make_driver(script: Script, mode: str, **options: Any) -> Driver:
    return Driver(make_sync(script, **options) if mode == "sync" else make_async(script, **options))
