"""FakeOpenAI: the OpenAI Chat Completions wire format (JSON, SSE with [DONE], errors, /v1/models)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from omnigate.testing.fakes.script import RecordedRequest, Reply, Usage, split_arguments
from omnigate.testing.fakes.server import Call, FakeUpstream, Handler

__all__ = ["FakeOpenAI", "openai_texts", "openai_usage"]

_ERROR_DEFAULTS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def openai_usage(usage: Usage) -> dict[str, Any]:
    """The ``usage`` object of a chat completion."""
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.total,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return " ".join(p for p in parts if isinstance(p, str)) if parts else None
    return None


def openai_texts(body: Any) -> tuple[list[str], str | None]:
    """Message texts (system/developer/user/assistant, not tool results) and the last user text."""
    texts: list[str] = []
    last_user: str | None = None
    messages = body.get("messages") if isinstance(body, dict) else None
    for msg in messages if isinstance(messages, list) else []:
        if not isinstance(msg, dict) or msg.get("role") in ("tool", "function"):
            continue
        text = _content_text(msg.get("content"))
        if text is None:
            continue
        texts.append(text)
        if msg.get("role") == "user" and text.strip():
            last_user = text
    return texts, last_user


class FakeOpenAI(FakeUpstream):
    """Fake of ``https://api.openai.com/v1``; ``base_url`` ends in ``/v1`` (use as ``OPENAI_BASE_URL``).

    Serves ``POST /v1/chat/completions`` and ``GET /v1/models[/{id}]``; any other path gets
    OpenAI's 404 ``Invalid URL`` error (paths without ``/v1`` are not accepted, like the
    real API). Requires ``Authorization: Bearer <key>`` (any key unless ``api_key`` is set).
    """

    provider: ClassVar[str] = "openai"
    base_path: ClassVar[str] = "/v1"
    azure: ClassVar[bool] = False

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1"),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key=api_key, host=host, port=port)
        self.models = list(models)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/chat/completions", self._chat),
            ("GET", "/v1/models", self._list_models),
            ("GET", "/v1/models/{model_id:.+}", self._get_model),
        ]

    # -- checks ----------------------------------------------------------------------------

    def check_auth(self, record: RecordedRequest) -> Reply | None:
        auth = record.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            return Reply.error(401, _NO_KEY, code="")
        if self.api_key is not None and key != self.api_key:
            return Reply.error(401, f"Incorrect API key provided: {key[:3]}***{key[-2:]}.")
        return None

    def check_body(self, body: Any, *, need_model: bool = True) -> Reply | None:
        if not isinstance(body, dict):
            return Reply.error(400, "We could not parse the JSON body of your request.")
        if need_model and not body.get("model"):
            return Reply.error(400, "you must provide a model parameter")
        if "messages" not in body:
            return Reply.error(
                400, "Missing required parameter: 'messages'.", code="missing_required_parameter"
            )
        if body.get("stream_options") is not None and not body.get("stream"):
            return Reply.error(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            )
        return None

    # -- handlers --------------------------------------------------------------------------

    async def _chat(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        problem = self.check_auth(record) or self.check_body(record.json, need_model=not self.azure)
        if problem is not None:
            return await self.respond(request, record, problem)
        return await self.serve_chat(request, record, str(record.json.get("model") or ""))

    async def serve_chat(
        self, request: web.Request, record: RecordedRequest, model: str
    ) -> web.StreamResponse:
        body = record.json
        texts, last_user = openai_texts(body)
        options = body.get("stream_options") or {}
        call = self.make_call(
            record,
            model=model,
            stream=bool(body.get("stream")),
            texts=texts,
            last_user=last_user,
            include_usage=bool(options.get("include_usage")),
            obfuscation=options.get("include_obfuscation", True) is not False,
            created=int(time.time()),
        )
        return await self.respond(request, record, call.reply, call)

    async def _list_models(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        problem = self.check_auth(record)
        if problem is not None:
            return await self.respond(request, record, problem)
        data = [self._model_card(m) for m in self.models]
        return self._plain_json(record, {"object": "list", "data": data})

    async def _get_model(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        problem = self.check_auth(record)
        if problem is not None:
            return await self.respond(request, record, problem)
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            msg = f"The model `{model_id}` does not exist or you do not have access to it."
            return await self.respond(request, record, Reply.error(404, msg))
        return self._plain_json(record, self._model_card(model_id))

    async def _not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        reply = Reply.error(404, f"Invalid URL ({request.method} {request.path})", code="")
        return await self.respond(request, record, reply)

    def _model_card(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "system"}

    def _plain_json(self, record: RecordedRequest, doc: Any) -> web.Response:
        record.status = 200
        record.completed = True
        headers = self.response_headers(self._seq)
        return web.Response(body=orjson.dumps(doc), content_type="application/json", headers=headers)

    # -- rendering -------------------------------------------------------------------------

    def response_headers(self, seq: int) -> dict[str, str]:
        return {"x-request-id": f"req_fake{seq:08d}", "openai-processing-ms": "1"}

    def error_body(self, reply: Reply) -> Any:
        default_type, default_code = _ERROR_DEFAULTS.get(
            reply.status, ("server_error" if reply.status >= 500 else "invalid_request_error", None)
        )
        code = default_code if reply.code is None else (reply.code or None)
        return {
            "error": {
                "message": reply.message,
                "type": reply.error_type or default_type,
                "param": None,
                "code": code,
            }
        }

    def _envelope(self, call: Call, obj: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{call.seq:016d}",
            "object": obj,
            "created": call.extra.get("created", 0),
            "model": call.model,
        }

    def message(self, reply: Reply) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text_value,
            "refusal": None,
            "annotations": [],
        }
        if reply.calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                for c in reply.calls
            ]
        return msg

    def render_json(self, call: Call) -> Any:
        choice = {"index": 0, "message": self.message(call.reply), "logprobs": None}
        choice["finish_reason"] = call.reply.finish()
        doc = self._envelope(call, "chat.completion")
        doc["choices"] = [self.decorate_choice(call, choice, final=True)]
        doc["usage"] = openai_usage(call.usage)
        if not self.azure:
            doc["service_tier"] = "default"
        doc["system_fingerprint"] = "fp_fake"
        return self.decorate_completion(call, doc)

    def decorate_choice(self, call: Call, choice: dict[str, Any], *, final: bool) -> dict[str, Any]:
        """Hook for Azure's content_filter_results."""
        return choice

    def decorate_completion(self, call: Call, doc: dict[str, Any]) -> dict[str, Any]:
        """Hook for Azure's prompt_filter_results."""
        return doc

    def deltas(self, reply: Reply) -> list[dict[str, Any]]:
        """The delta objects of a stream, finish chunk excluded."""
        text_first = reply.kind == "text" or bool(reply.text_value)
        out: list[dict[str, Any]] = [
            {"role": "assistant", "content": "" if text_first else None, "refusal": None}
        ]
        out.extend({"content": piece} for piece in reply.stream_pieces())
        for index, c in enumerate(reply.calls):
            start = {"index": index, "id": c.id, "type": "function"}
            start["function"] = {"name": c.name, "arguments": ""}
            out.append({"tool_calls": [start]})
            for frag in split_arguments(c.arguments_json):
                out.append({"tool_calls": [{"index": index, "function": {"arguments": frag}}]})
        return out

    def stream_chunks(self, call: Call) -> list[dict[str, Any]]:
        """Chunk documents in order (without the ``[DONE]`` sentinel)."""
        chunks: list[dict[str, Any]] = []
        deltas = self.deltas(call.reply)
        finish = call.reply.finish()
        for i, delta in enumerate([*deltas, {}]):
            last = i == len(deltas)
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish if last else None}
            chunks.append(self._chunk(call, [self.decorate_choice(call, choice, final=last)]))
        if call.include_usage:
            chunks.append(self._chunk(call, [], usage=openai_usage(call.usage)))
        return chunks

    def _chunk(self, call: Call, choices: list[Any], usage: Any = None) -> dict[str, Any]:
        doc = self._envelope(call, "chat.completion.chunk")
        if not self.azure:
            doc["service_tier"] = "default"
        doc["system_fingerprint"] = "fp_fake"
        doc["choices"] = choices
        if call.include_usage:
            doc["usage"] = usage
        if call.extra.get("obfuscation") and not self.azure:
            doc["obfuscation"] = "fake"[: 1 + call.seq % 4]
        return doc

    def render_stream(self, call: Call) -> list[bytes]:
        events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in self.stream_chunks(call)]
        return [*events, b"data: [DONE]\n\n"]

    def render_stream_error(self, call: Call) -> bytes:
        reply = call.reply
        message = reply.message or "The server had an error while processing your request."
        err = {"message": message, "type": reply.error_type or "server_error", "param": None, "code": None}
        return b"data: " + orjson.dumps({"error": err}) + b"\n\n"
