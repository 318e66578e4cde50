"""FakeGemini: the Gemini v1beta generateContent / streamGenerateContent?alt=sse wire format."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from omnigate.testing.fakes.script import RecordedRequest, Reply, Usage
from omnigate.testing.fakes.server import Call, FakeUpstream, Handler

__all__ = ["FakeGemini", "gemini_texts", "gemini_usage"]

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def gemini_usage(usage: Usage, *, candidates: int | None = None) -> dict[str, Any]:
    """``usageMetadata``; zero-valued optional counts are omitted like the real API."""
    visible = usage.visible_output if candidates is None else candidates
    doc: dict[str, Any] = {"promptTokenCount": usage.input}
    if visible:
        doc["candidatesTokenCount"] = visible
    doc["totalTokenCount"] = usage.input + visible + usage.reasoning
    doc["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.input}]
    if usage.cache_read:
        doc["cachedContentTokenCount"] = usage.cache_read
    if usage.reasoning:
        doc["thoughtsTokenCount"] = usage.reasoning
    return doc


def _part_texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def gemini_texts(body: Any) -> tuple[list[str], str | None]:
    """systemInstruction and contents text parts, and the last user text."""
    if not isinstance(body, dict):
        return [], None
    texts = _part_texts(body.get("systemInstruction") or body.get("system_instruction"))
    last_user: str | None = None
    contents = body.get("contents")
    for content in contents if isinstance(contents, list) else []:
        parts = _part_texts(content)
        texts.extend(parts)
        joined = " ".join(parts)
        if isinstance(content, dict) and content.get("role", "user") == "user" and joined.strip():
            last_user = joined
    return texts, last_user


class FakeGemini(FakeUpstream):
    """Fake of ``https://generativelanguage.googleapis.com``; ``base_url`` is the origin.

    Use as ``GEMINI_BASE_URL`` or ``HttpOptions(base_url=...)``. Serves
    ``POST /{v1beta|v1}/models/{model}:generateContent`` and ``:streamGenerateContent``
    (``?alt=sse``: ``data: {json}\\r\\n\\r\\n`` events, no sentinel, the connection closes;
    without ``alt=sse`` a streamed JSON array). Auth: ``x-goog-api-key`` or ``?key=``;
    missing → 403 ``PERMISSION_DENIED``, wrong (when ``api_key`` is set) → 400
    ``API_KEY_INVALID``. Tool calls are ``functionCall`` parts (no ids, whole in one chunk);
    ``usageMetadata`` is cumulative in stream chunks, the last chunk has the totals.
    """

    provider: ClassVar[str] = "gemini"
    base_path: ClassVar[str] = ""
    close_after_stream: ClassVar[bool] = True

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/{version:v1beta|v1}/models/{target}", self._models)]

    def check(self, record: RecordedRequest) -> Reply | None:
        key = record.headers.get("x-goog-api-key") or record.query.get("key", "")
        auth = record.headers.get("authorization", "")
        if not key and not auth.lower().startswith("bearer "):
            return Reply.error(403, _NO_KEY)
        if key and self.api_key is not None and key != self.api_key:
            return Reply.error(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID")
        body = record.json
        if not isinstance(body, dict):
            return Reply.error(400, "Invalid JSON payload received.")
        if not body.get("contents"):
            return Reply.error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        return None

    async def _models(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        model, _, method = request.match_info["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return await self._not_found(request, record)
        problem = self.check(record)
        if problem is not None:
            return await self.respond(request, record, problem)
        texts, last_user = gemini_texts(record.json)
        call = self.make_call(
            record,
            model=model,
            stream=method == "streamGenerateContent",
            texts=texts,
            last_user=last_user,
            sse=record.query.get("alt") == "sse",
            response_id=f"fake{self._seq + 1:020d}",
        )
        return await self.respond(request, record, call.reply, call)

    async def _not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        msg = f"The requested URL {request.path} was not found on this server."
        return await self.respond(request, record, Reply.error(404, msg))

    def error_body(self, reply: Reply) -> Any:
        status = reply.error_type or _STATUS.get(
            reply.status, "INTERNAL" if reply.status >= 500 else "INVALID_ARGUMENT"
        )
        err: dict[str, Any] = {"code": reply.status, "message": reply.message, "status": status}
        details: list[Any] = []
        if reply.code:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reply.code,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            )
        if reply.retry_after is not None:
            delay = reply.retry_after if isinstance(reply.retry_after, str) else f"{reply.retry_after:g}s"
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
        if details:
            err["details"] = details
        return {"error": err}

    def _finish(self, reply: Reply) -> str:
        finish = reply.finish()
        return _FINISH.get(finish, finish)

    def _chunk(
        self, call: Call, parts: list[Any], usage: dict[str, Any], finish: str | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": call.extra.get("response_id", ""),
        }

    def _call_parts(self, reply: Reply) -> list[Any]:
        return [{"functionCall": {"name": c.name, "args": c.arguments()}} for c in reply.calls]

    def render_json(self, call: Call) -> Any:
        reply = call.reply
        parts: list[Any] = [{"text": reply.text_value or ""}] if reply.text_value or not reply.calls else []
        parts += self._call_parts(reply)
        return self._chunk(call, parts, gemini_usage(call.usage), self._finish(reply))

    def chunks(self, call: Call) -> list[dict[str, Any]]:
        """Stream chunk documents: text pieces, then all function calls, finishReason on the last."""
        reply = call.reply
        groups: list[list[Any]] = [[{"text": p}] for p in reply.stream_pieces()]
        if reply.calls:
            groups.append(self._call_parts(reply))
        if not groups:
            groups.append([{"text": ""}])
        visible = call.usage.visible_output
        out = []
        for i, parts in enumerate(groups):
            last = i == len(groups) - 1
            grown = visible * (i + 1) // len(groups)
            usage = gemini_usage(call.usage, candidates=grown)
            out.append(self._chunk(call, parts, usage, self._finish(reply) if last else None))
        return out

    def render_stream(self, call: Call) -> list[bytes]:
        docs = [orjson.dumps(d) for d in self.chunks(call)]
        if call.extra.get("sse"):
            return [b"data: " + d + b"\r\n\r\n" for d in docs]
        return [
            (b"[" if i == 0 else b",\r\n") + d + (b"]" if i == len(docs) - 1 else b"")
            for i, d in enumerate(docs)
        ]

    def stream_headers(self, call: Call) -> dict[str, str]:
        if call.extra.get("sse"):
            return {"Content-Type": "text/event-stream", "Content-Disposition": "attachment"}
        return {"Content-Type": "application/json; charset=UTF-8"}

    def render_stream_error(self, call: Call) -> bytes:
        reply = call.reply
        status = reply.error_type or "INTERNAL"
        err = {
            "error": {
                "code": 500,
                "message": reply.message or "Internal error encountered.",
                "status": status,
            }
        }
        data = orjson.dumps(err)
        return b"data: " + data + b"\r\n\r\n" if call.extra.get("sse") else b",\r\n" + data + b"]"
