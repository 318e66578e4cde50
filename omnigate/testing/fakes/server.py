"""FakeUpstream: the aiohttp server base shared by every provider fake (recording, queue, faults)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web

from omnigate.testing.fakes.script import Call, RecordedRequest, Reply, Usage, default_usage

__all__ = ["Call", "DefaultReply", "FakeUpstream", "Handler"]

#: A reply, or a function choosing one from the recorded request.
DefaultReply = Reply | Callable[[RecordedRequest], Reply]
Handler = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """Base of the provider fakes: a real aiohttp server on 127.0.0.1 with an ephemeral port.

    Use as ``async with FakeOpenAI() as fake:`` (or ``await fake.start()`` / ``await
    fake.close()``). ``enqueue(*replies)`` scripts the next requests in FIFO order; when
    the queue is empty the default (``set_default``) or the provider's echo answer is used.
    Requests rejected by the fake's own checks (auth headers, required fields, unknown
    routes) are recorded but do not consume the queue. Every request lands in
    ``requests`` with its outcome; client disconnects (handler cancelled, or a write to a
    gone client) set ``disconnected`` and bump ``disconnects``.
    """

    provider: ClassVar[str] = "fake"
    #: Path prefix appended to the origin to form ``base_url``.
    base_path: ClassVar[str] = ""
    #: Send ``Connection: close`` with streams and close after them (Gemini does).
    close_after_stream: ClassVar[bool] = False

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        #: Total requests received (``requests`` may be trimmed, see ``max_records``).
        self.request_count = 0
        #: Keep only about this many recent records (long benchmark runs); None = all.
        self.max_records: int | None = None
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._queue: collections.deque[Reply] = collections.deque()
        self._default: DefaultReply | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._seq = 0
        self._in_flight = 0
        self._tick = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        """Start listening; returns ``base_url``. After ``close()`` it restarts on the same port."""
        if self._runner is not None:
            return self.base_url
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._wrap(handler))
        app.router.add_route("*", "/{tail:.*}", self._wrap(self._not_found))
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self._closing = False
        self.port = int(runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        """Stop the server, cancelling hung handlers (not counted as client disconnects)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>`` (no path)."""
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL to configure a client with (provider convention, see the subclass)."""
        return self.origin + self.base_path

    # -- scripting and inspection ----------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Script the next requests (FIFO)."""
        self._queue.extend(replies)

    def set_default(self, reply: DefaultReply | None) -> None:
        """Reply used when the queue is empty (a Reply, a function of the request, or None = echo)."""
        self._default = reply

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._queue)

    def reset(self) -> None:
        """Forget recorded requests, scripted replies, the default and disconnect counts."""
        self.requests.clear()
        self.request_count = 0
        self._queue.clear()
        self._default = None
        self.disconnects = 0
        self.disconnected.clear()

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._in_flight

    @property
    def connections(self) -> int:
        """Distinct client connections (peer addresses) that carried requests."""
        return len({r.peer for r in self.requests if r.peer is not None})

    @property
    def billed(self) -> Usage:
        """Sum of the usage reported in completed responses (the fake's token ledger)."""
        total = Usage()
        for r in self.requests:
            if r.usage is not None:
                total = total + r.usage
        return total

    async def wait_for_requests(self, count: int = 1, timeout_s: float = 5.0) -> Sequence[RecordedRequest]:
        """Wait until at least ``count`` requests arrived (since start or ``reset``); returns the records."""
        await self._wait_until(lambda: self.request_count >= count, timeout_s)
        return self.requests

    async def wait_disconnected(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until ``count`` client disconnects were observed."""
        await self._wait_until(lambda: self.disconnects >= count, timeout_s)

    async def wait_idle(self, timeout_s: float = 5.0) -> None:
        """Wait until no request is being handled."""
        await self._wait_until(lambda: self._in_flight == 0, timeout_s)

    async def _wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                tick = self._tick
                await tick.wait()

    def _notify(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    # -- subclass hooks --------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) triples served by this fake."""
        return []

    def error_body(self, reply: Reply) -> Any:
        """The provider's error document for an error reply."""
        return {"error": {"message": reply.message, "code": reply.status}}

    def response_headers(self, seq: int) -> dict[str, str]:
        """Headers sent with every response (request ids)."""
        return {}

    def default_reply(self, call_texts: Sequence[str], last_user: str | None) -> Reply:
        """The echo answer used when nothing is scripted (see ``script.default_usage``)."""
        return Reply.text(f"echo: {last_user}" if last_user else "echo")

    def render_json(self, call: Call) -> Any:
        raise NotImplementedError

    def render_stream(self, call: Call) -> list[bytes]:
        """Framed SSE events; the last one is the terminal event."""
        raise NotImplementedError

    def render_stream_error(self, call: Call) -> bytes:
        """The framed mid-stream error event."""
        raise NotImplementedError

    def stream_headers(self, call: Call) -> dict[str, str]:
        return {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

    async def _not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return await self.respond(request, record, Reply.error(404, "Not Found"))

    # -- request flow ----------------------------------------------------------------------

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            record = await self._record(request)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            self._in_flight += 1
            self._notify()
            try:
                return await handler(request, record)
            except asyncio.CancelledError:
                if not self._closing and not record.cut and not record.completed:
                    self._mark_disconnected(record)
                raise
            except ConnectionResetError:
                if not record.cut:
                    self._mark_disconnected(record)
                return web.Response(status=499)
            finally:
                self._in_flight -= 1
                if task is not None:
                    self._tasks.discard(task)
                self._notify()

        return wrapped

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = orjson.loads(body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=parsed,
            body=body,
            peer=(str(peer[0]), int(peer[1])) if peer else None,
        )
        self.requests.append(record)
        self.request_count += 1
        if self.max_records is not None and len(self.requests) > 2 * self.max_records:
            del self.requests[: len(self.requests) - self.max_records]
        return record

    def _mark_disconnected(self, record: RecordedRequest) -> None:
        record.disconnected = True
        self.disconnects += 1
        self.disconnected.set()
        self._notify()

    def next_reply(self, record: RecordedRequest, texts: Sequence[str], last_user: str | None) -> Reply:
        """Pop the next scripted reply, else the default."""
        if self._queue:
            return self._queue.popleft()
        if isinstance(self._default, Reply):
            return self._default
        if self._default is not None:
            return self._default(record)
        return self.default_reply(texts, last_user)

    def make_call(
        self,
        record: RecordedRequest,
        *,
        model: str,
        stream: bool,
        texts: Sequence[str],
        last_user: str | None,
        include_usage: bool = False,
        **extra: Any,
    ) -> Call:
        reply = self.next_reply(record, texts, last_user)
        self._seq += 1
        usage = reply.usage if reply.usage is not None else default_usage(texts, reply)
        record.stream = stream
        return Call(record, reply, reply.model or model, stream, usage, self._seq, include_usage, extra)

    async def respond(
        self, request: web.Request, record: RecordedRequest, reply: Reply, call: Call | None = None
    ) -> web.StreamResponse:
        """Serve ``reply`` (timing, faults, errors, raw bodies, JSON or stream)."""
        record.reply = reply
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.hang:
            await _forever()
        headers = self.response_headers(call.seq if call else self._seq)
        if reply.kind == "error":
            headers.update(reply.retry_headers())
            headers.update(reply.headers)
            data = orjson.dumps(self.error_body(reply))
            return await self._send_body(request, record, reply, reply.status, data, headers)
        headers.update(reply.headers)
        if reply.kind == "raw":
            return await self._send_body(request, record, reply, reply.status, reply.body or b"", headers)
        assert call is not None
        if call.stream:
            return await self._send_stream(request, record, call, headers)
        data = orjson.dumps(self.render_json(call))
        resp = await self._send_body(request, record, reply, 200, data, headers)
        if record.completed:
            record.usage = call.usage
        return resp

    async def _send_body(
        self,
        request: web.Request,
        record: RecordedRequest,
        reply: Reply,
        status: int,
        data: bytes,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        content_type = reply.content_type or "application/json"
        headers = {"Content-Type": content_type, **headers}
        record.status = status
        if reply.cut_after is None and reply.stall_after is None:
            record.completed = True
            return web.Response(status=status, body=data, headers=headers)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(data)
        await resp.prepare(request)
        if reply.stall_after is not None:
            await _forever()
        await resp.write(data[: len(data) // 2])
        self._cut(request, record)
        return resp

    async def _send_stream(
        self, request: web.Request, record: RecordedRequest, call: Call, headers: dict[str, str]
    ) -> web.StreamResponse:
        reply = call.reply
        events = self.render_stream(call)
        resp = web.StreamResponse(status=200, headers={**self.stream_headers(call), **headers})
        if self.close_after_stream:
            resp.force_close()
        await resp.prepare(request)
        record.status = 200
        limits = {"end": len(events)}
        if reply.cut_after is not None:
            limits["cut"] = min(reply.cut_after, len(events) - 1)
        if reply.error_after is not None:
            limits["error"] = min(reply.error_after, len(events) - 1)
        if reply.stall_after is not None:
            limits["stall"] = min(reply.stall_after, len(events))
        action = min(limits, key=lambda k: (limits[k], k != "stall"))
        for i in range(limits[action]):
            if i and reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            await resp.write(events[i])
            record.events_sent += 1
        if action == "stall":
            await _forever()
        if action == "cut":
            self._cut(request, record)
            return resp
        if action == "error":
            if reply.chunk_delay_s and record.events_sent:
                await asyncio.sleep(reply.chunk_delay_s)
            await resp.write(self.render_stream_error(call))
            record.events_sent += 1
        if reply.end_delay_s:
            await asyncio.sleep(reply.end_delay_s)
        await resp.write_eof()
        record.completed = True
        if action == "end":
            record.usage = call.usage
        return resp

    def _cut(self, request: web.Request, record: RecordedRequest) -> None:
        record.cut = True
        if request.transport is not None:
            request.transport.close()


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()
