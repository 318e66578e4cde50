"""The chat endpoint: a raw ASGI app that validates, runs the pipeline, and answers in JSON or relays SSE."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import orjson

from omnigate.chat.models import ChatRequest, ChatResult, ChatStream, Usage
from omnigate.chat.validate import parse_chat_request
from omnigate.errors import (
    InvalidRequestError,
    OmnigateError,
    PermissionDeniedError,
    ServiceUnavailableError,
    UpstreamError,
)
from omnigate.gateway.accounting import Ledger
from omnigate.gateway.disconnect import ClientDisconnectedError, DisconnectWatch
from omnigate.gateway.pacing import CURRENT_PACER, StreamPacer
from omnigate.gateway.stalls import StallWatch
from omnigate.http import JSON_CONTENT_TYPE, header_pairs, send_error
from omnigate.plugin.interfaces import RESPONSE_HEADER_PAIRS, RESPONSE_HEADERS, Call
from omnigate.runtime import Runtime
from omnigate.surfaces.base import Reply, Surface, cost_usd
from omnigate.types import (
    SCOPE_CLIENT_REQUEST_ID,
    SCOPE_OUTCOME,
    SCOPE_PRINCIPAL,
    SCOPE_REQUEST_ID,
    Message,
    Receive,
    Scope,
    Send,
)
from omnigate.usage.records import STATUS_CANCELLED, STATUS_ERROR, STATUS_OK, STATUS_TRUNCATED

logger = logging.getLogger("omnigate.dispatch")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
CLIENT_CLOSED = 499  # nginx's convention for "client closed the request", used in usage records only


async def read_json(receive: Receive) -> Any:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON: {exc.msg}", code="invalid_json"
        ) from None


def overloaded(limit: int) -> ServiceUnavailableError:
    """Shed before any work: the client retries shortly, or on another replica."""
    return ServiceUnavailableError(
        f"this gateway process is serving its limit of {limit} requests; retry shortly",
        code="overloaded",
        headers={"retry-after": "1"},
    )


def check_models_allowed(principal: Any, request: ChatRequest) -> None:
    """A key restricted to some models may use only those, as primary or as fallback."""
    allowed = getattr(principal, "allowed_models", None)
    if allowed is None:
        return
    for param, model in [("model", request.model)] + [
        (f"fallback_models[{i}]", m) for i, m in enumerate(request.fallback_models or ())
    ]:
        if model not in allowed:
            raise PermissionDeniedError(
                f"this API key may not use model {model!r}", code="model_not_allowed", param=param
            )


class ChatEndpoint:
    """One per surface; Starlette mounts a class instance as a raw ASGI app (no Request/Response objects)."""

    def __init__(self, runtime: Runtime, surface: Surface) -> None:
        self.runtime = runtime
        self.surface = surface

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        engine = runtime.engine
        ledger = Ledger(
            runtime.prices,
            runtime.usage_writer,
            scope[SCOPE_PRINCIPAL],
            scope[SCOPE_REQUEST_ID],
            time.perf_counter(),
            scope.get(SCOPE_CLIENT_REQUEST_ID),
        )
        scope[SCOPE_OUTCOME] = ledger
        watch = DisconnectWatch(receive)
        pacer: StreamPacer | None = None
        paced: contextvars.Token[StreamPacer | None] | None = None
        answered = False
        runtime.in_flight += 1
        try:
            if runtime.in_flight > runtime.settings.max_in_flight_requests > 0:
                raise overloaded(runtime.settings.max_in_flight_requests)
            call = await self._admit(scope, receive, ledger)
            if call.request.stream:
                # Before the first attempt: its reader reads the first chunk (priming), often the whole
                # answer, before the relay exists, and must be able to say it is cooperative.
                pacer = StreamPacer()
                paced = CURRENT_PACER.set(pacer)
            watch.start()
            result: ChatResult | ChatStream = await watch.run(engine.pipeline(call))
            if isinstance(result, ChatStream):
                await self._relay(result, call, ledger, watch, send, pacer)
            else:
                await self._respond(result, call, ledger, send)
            answered = True
        except ClientDisconnectedError:
            ledger.finish(STATUS_CANCELLED, CLIENT_CLOSED, error_code="client_disconnected")
        except OmnigateError as error:
            ledger.finish(STATUS_ERROR, error.status_code, error_code=error.code)
            await send_error(send, error)
            answered = True
        finally:
            runtime.in_flight -= 1
            watch.stop(answered)
            if paced is not None:
                CURRENT_PACER.reset(paced)
            if not ledger.finished:  # an unexpected failure or the server cancelling us
                ledger.finish(STATUS_ERROR, 500, error_code="internal_error")
            await ledger.run_finalizers()

    async def _admit(self, scope: Scope, receive: Receive, ledger: Ledger) -> Call:
        request = parse_chat_request(await read_json(receive))
        ledger.requested_model = request.model
        ledger.stream = request.stream
        check_models_allowed(scope[SCOPE_PRINCIPAL], request)
        target = self.runtime.engine.router.resolve(request.model)
        ledger.target = target
        deadline = time.monotonic() + self.runtime.settings.request_deadline_s
        ledger.call = Call(
            scope[SCOPE_REQUEST_ID],
            scope[SCOPE_PRINCIPAL],
            request,
            target,
            deadline,
            passthrough=self.surface.passthrough,
        )
        return ledger.call

    def _reply(self, call: Call, ledger: Ledger, upstream_id: str, model: str) -> Reply:
        return Reply(
            request_id=call.request_id,
            id=upstream_id or call.request_id,
            model=model or call.target.model,
            provider=call.target.provider,
            created=int(time.time()),
            include_usage=_wants_usage(call.request, self.surface.name),
            fallback_used=ledger.fallback_used,
            cached=ledger.cached,
        )

    def _headers(self, call: Call, reply: Reply) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-omnigate-provider", call.target.provider.encode("latin-1")),
            (b"x-omnigate-model", call.target.model.encode("latin-1")),
            (b"x-omnigate-fallback-used", b"true" if reply.fallback_used else b"false"),
        ]
        named: dict[str, str] | None = call.state.get(RESPONSE_HEADERS)
        if named:  # a policy's header replaces one of these of the same name
            replaced = {name.lower().encode("latin-1") for name in named}
            headers = [pair for pair in headers if pair[0] not in replaced] + header_pairs(named)
        headers += call.state.get(RESPONSE_HEADER_PAIRS, ())
        return headers

    async def _respond(self, result: ChatResult, call: Call, ledger: Ledger, send: Send) -> None:
        reply = self._reply(call, ledger, result.id, result.model)
        reply.cost_micros = ledger.cost(result.usage)
        reply.latency_ms = ledger.latency_ms()
        if result.raw_wire is not None and result.raw_wire == call.passthrough:
            body = result.raw  # the upstream's own answer, already in the client's wire
        else:
            body = orjson.dumps(self.surface.render_result(result, reply))
        headers = [
            JSON_CONTENT_TYPE,
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        headers += self._headers(call, reply)
        if reply.cost_micros is not None:
            headers.append((b"x-omnigate-cost-usd", f"{cost_usd(reply.cost_micros):.6f}".encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        ledger.finish(STATUS_OK, 200, result.usage)

    async def _relay(
        self,
        stream: ChatStream,
        call: Call,
        ledger: Ledger,
        watch: DisconnectWatch,
        send: Send,
        pacer: StreamPacer | None,
    ) -> None:
        reply = self._reply(call, ledger, stream.id, stream.model)
        relay = _Relay(self.surface, reply, send, pacer, self.runtime.stall_watch)
        try:
            await watch.run(relay.run(stream, call, self._headers(call, reply), ledger))
        except ClientDisconnectedError as gone:
            usage = relay.usage_so_far(stream)
            ledger.finish(STATUS_CANCELLED, CLIENT_CLOSED, usage, error_code=gone.code)
        except UpstreamError as error:
            if not relay.started:
                raise  # nothing reached the client yet: answer with a proper error status
            logger.warning("stream from %s broke after the first byte: %s", call.target.provider, error.code)
            ledger.finish(STATUS_TRUNCATED, 200, relay.usage_so_far(stream), error_code=error.code)
            await relay._body(relay.take_held() + self.surface.stream_error(error, reply), more=False)
        finally:
            await stream.aclose()


class _Relay:
    """Relays one stream: headers with the first chunk, then the chunks, then the terminal events.

    Chunks go out as they come; while the reader has more already buffered (see
    :mod:`omnigate.gateway.pacing`) they are held and sent together when it would wait, so a burst of
    events read at once costs one send, and nothing waits on the network unsent.
    """

    def __init__(
        self,
        surface: Surface,
        reply: Reply,
        send: Send,
        pacer: StreamPacer | None = None,
        stalls: StallWatch | None = None,
    ) -> None:
        self.surface = surface
        self.reply = reply
        self.send = send
        self.stalls = stalls
        self.started = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.pacer = pacer if pacer is not None else StreamPacer()
        self.pacer.flush = self._flush
        self._held: list[bytes] = []

    async def _body(self, data: bytes, more: bool = True) -> None:
        if data or not more:
            message: Message = {"type": "http.response.body", "body": data, "more_body": more}
            if self.stalls is None:
                await self.send(message)
            else:
                await self.stalls.send(self.send, message)

    async def _emit(self, data: bytes) -> None:
        if self.pacer.cooperative:
            self._held.append(data)
        else:
            await self._body(data)

    def usage_so_far(self, stream: ChatStream) -> Usage | None:
        """The usage chunk's when it came, else what the upstream had reported when the stream stopped."""
        return self.usage if self.usage is not None else stream.partial_usage()

    def take_held(self) -> bytes:
        held = b"".join(self._held)
        self._held.clear()  # in place: run() holds on to the list
        return held

    async def _flush(self) -> None:
        if self._held:
            await self._body(self.take_held())

    async def _start(self, headers: list[tuple[bytes, bytes]], opening: bool = True) -> None:
        # Headers wait for the first chunk, so an upstream failing before it still gets a real status.
        await self.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        self.started = True
        if opening:  # a relayed stream (raw chunks) carries the upstream's own opening event
            await self._emit(self.surface.stream_start(self.reply))

    async def run(
        self, stream: ChatStream, call: Call, headers: list[tuple[bytes, bytes]], ledger: Ledger
    ) -> None:
        token = CURRENT_PACER.set(self.pacer)
        render, reply, pacer, held = self.surface.stream_chunk, self.reply, self.pacer, self._held
        try:
            async for chunk in stream:
                if not self.started:
                    await self._start(headers, opening=not chunk.raw)
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if chunk.finish_reason is not None:
                    self.finish_reason = chunk.finish_reason
                data = chunk.raw or render(chunk, reply)
                if pacer.cooperative:  # _emit, inlined: this loop runs once per event
                    held.append(data)
                else:
                    await self._body(data)
        finally:
            CURRENT_PACER.reset(token)
        if not self.started:
            await self._start(headers)
        self.reply.cost_micros = ledger.cost(self.usage)
        end = self.surface.stream_end(self.usage, self.finish_reason, self.reply)
        await self._body(self.take_held() + end, more=False)
        ledger.finish(STATUS_OK, 200, self.usage)


def _wants_usage(request: ChatRequest, surface: str) -> bool:
    if surface != "openai":
        return True
    options = request.stream_options or {}
    return bool(options.get("include_usage"))
