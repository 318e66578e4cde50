"""FakeAnthropic: the Anthropic Messages wire format (JSON, named SSE events, errors incl. 529)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from omnigate.testing.fakes.script import RecordedRequest, Reply, Usage, split_arguments
from omnigate.testing.fakes.server import Call, FakeUpstream, Handler

__all__ = ["FakeAnthropic", "anthropic_texts", "anthropic_usage"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_usage(usage: Usage, *, output: int | None = None) -> dict[str, Any]:
    """The ``usage`` object (``input_tokens`` is the uncached part)."""
    return {
        "input_tokens": usage.uncached_input,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output if output is None else output,
        "service_tier": "standard",
    }


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text" and "text" in b]


def anthropic_texts(body: Any) -> tuple[list[str], str | None]:
    """System and message text blocks (tool_use/tool_result excluded) and the last user text."""
    if not isinstance(body, dict):
        return [], None
    texts = _block_texts(body.get("system"))
    last_user: str | None = None
    messages = body.get("messages")
    for msg in messages if isinstance(messages, list) else []:
        if not isinstance(msg, dict):
            continue
        parts = _block_texts(msg.get("content"))
        texts.extend(parts)
        joined = " ".join(parts)
        if msg.get("role") == "user" and joined.strip():
            last_user = joined
    return texts, last_user


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class FakeAnthropic(FakeUpstream):
    """Fake of ``https://api.anthropic.com``; ``base_url`` is the origin (use as ``ANTHROPIC_BASE_URL``).

    Serves ``POST /v1/messages``. Requires ``x-api-key`` (or ``Authorization: Bearer``) and
    ``anthropic-version``; ``max_tokens``, ``model`` and ``messages`` are required like the
    real API. Neutral finish reasons map to ``end_turn``/``max_tokens``/``tool_use``/
    ``refusal`` (``stop_sequence`` when the reply has one); other strings pass verbatim.
    """

    provider: ClassVar[str] = "anthropic"
    base_path: ClassVar[str] = ""

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/v1/messages", self._messages)]

    def check(self, record: RecordedRequest) -> Reply | None:
        key = record.headers.get("x-api-key", "")
        auth = record.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            return Reply.error(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return Reply.error(401, "invalid x-api-key")
        if not record.headers.get("anthropic-version"):
            return Reply.error(400, "anthropic-version: header is required")
        body = record.json
        if not isinstance(body, dict):
            return Reply.error(400, "Request body is not valid JSON")
        for field in ("model", "messages", "max_tokens"):
            if field not in body:
                return Reply.error(400, f"{field}: Field required")
        return None

    async def _messages(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        problem = self.check(record)
        if problem is not None:
            return await self.respond(request, record, problem)
        texts, last_user = anthropic_texts(record.json)
        call = self.make_call(
            record,
            model=str(record.json["model"]),
            stream=bool(record.json.get("stream")),
            texts=texts,
            last_user=last_user,
        )
        return await self.respond(request, record, call.reply, call)

    async def _not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return await self.respond(request, record, Reply.error(404, "Not Found"))

    def response_headers(self, seq: int) -> dict[str, str]:
        return {"request-id": f"req_fake{seq:016d}"}

    def error_body(self, reply: Reply) -> Any:
        default = "api_error" if reply.status >= 500 else "invalid_request_error"
        kind = reply.error_type or _ERROR_TYPES.get(reply.status, default)
        return {
            "type": "error",
            "error": {"type": kind, "message": reply.message},
            "request_id": f"req_fake{self._seq:016d}",
        }

    def _stop(self, reply: Reply) -> tuple[str, str | None]:
        if reply.stop_sequence is not None:
            return "stop_sequence", reply.stop_sequence
        finish = reply.finish()
        return _STOP.get(finish, finish), None

    def _message(self, call: Call, content: list[Any], usage: dict[str, Any], final: bool) -> dict[str, Any]:
        stop_reason, stop_sequence = self._stop(call.reply) if final else (None, None)
        return {
            "id": f"msg_fake{call.seq:016d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    def _has_text_block(self, reply: Reply) -> bool:
        return bool(reply.text_value) or not reply.calls

    def render_json(self, call: Call) -> Any:
        reply = call.reply
        content: list[Any] = []
        if self._has_text_block(reply):
            content.append({"type": "text", "text": reply.text_value or ""})
        for c in reply.calls:
            content.append({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments()})
        return self._message(call, content, anthropic_usage(call.usage), True)

    def render_stream(self, call: Call) -> list[bytes]:
        reply = call.reply
        start_usage = anthropic_usage(call.usage, output=min(1, call.usage.output))
        start = self._message(call, [], start_usage, False)
        events = [_event("message_start", {"type": "message_start", "message": start})]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        if self._has_text_block(reply):
            deltas = [{"type": "text_delta", "text": p} for p in reply.stream_pieces()]
            blocks.append(({"type": "text", "text": ""}, deltas))
        for c in reply.calls:
            frags = ["", *split_arguments(c.arguments_json)]
            deltas = [{"type": "input_json_delta", "partial_json": f} for f in frags]
            blocks.append(({"type": "tool_use", "id": c.id, "name": c.name, "input": {}}, deltas))
        for index, (block, deltas) in enumerate(blocks):
            doc = {"type": "content_block_start", "index": index, "content_block": block}
            events.append(_event("content_block_start", doc))
            if index == 0:
                events.append(_event("ping", {"type": "ping"}))
            for delta in deltas:
                doc = {"type": "content_block_delta", "index": index, "delta": delta}
                events.append(_event("content_block_delta", doc))
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        stop_reason, stop_sequence = self._stop(reply)
        usage = anthropic_usage(call.usage)
        del usage["service_tier"]
        doc = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence}}
        events.append(_event("message_delta", {**doc, "usage": usage}))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events

    def render_stream_error(self, call: Call) -> bytes:
        reply = call.reply
        err = {"type": reply.error_type or "overloaded_error", "message": reply.message or "Overloaded"}
        return _event("error", {"type": "error", "error": err})
