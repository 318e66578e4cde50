"""FakeOllama: Ollama's native API (/api/chat JSON and NDJSON, /api/tags, {"error": ...} bodies) for tests.

Built on omnigate's shipped :class:`omnigate.testing.FakeUpstream`, so it scripts the same way as the
built-in fakes: ``fake.enqueue(Reply.text(...), Reply.error(500), Reply.text(..., cut_after=2))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web
from omnigate.testing import FakeUpstream, RecordedRequest, Reply, Usage
from omnigate.testing.fakes import Call
from omnigate.testing.fakes.server import Handler

__all__ = ["DEFAULT_MODELS", "FakeOllama", "ollama_texts"]

DEFAULT_MODELS = ("llama3:latest", "qwen2.5:7b")
CREATED_AT = "2025-01-01T00:00:00.000000Z"
ROLES = ("system", "user", "assistant", "tool")
_DONE = {"stop": "stop", "tool_calls": "stop", "length": "length"}


def _tagged(name: str) -> str:
    # Ollama's names default to the `latest` tag: "llama3" is "llama3:latest".
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def ollama_texts(body: Any) -> tuple[list[str], str | None]:
    """System, user and assistant contents (tool results excluded) and the last user text."""
    texts: list[str] = []
    last_user: str | None = None
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") == "tool":
            continue
        content = message.get("content")
        if isinstance(content, str) and content:
            texts.append(content)
            if message.get("role") == "user" and content.strip():
                last_user = content
    return texts, last_user


class FakeOllama(FakeUpstream):
    """Fake of an Ollama server; ``base_url`` is the origin (use it as ``OLLAMA_BASE_URL``).

    ``POST /api/chat`` streams NDJSON unless the body says ``"stream": false`` (Ollama's default is to
    stream); a model that is not in ``models`` gets Ollama's 404. ``GET /api/tags`` lists ``models``.
    With ``api_key`` set, requests must carry ``Authorization: Bearer <api_key>``. Usage is reported
    as ``prompt_eval_count`` (input) and ``eval_count`` (output); finish reasons map to ``done_reason``
    (``stop``, also for tool calls, or ``length``). A mid-stream error is an ``{"error": ...}`` line.
    """

    provider: ClassVar[str] = "ollama"
    base_path: ClassVar[str] = ""

    def __init__(
        self, *, models: Sequence[str] = DEFAULT_MODELS, api_key: str | None = None, port: int = 0
    ) -> None:
        super().__init__(api_key=api_key, port=port)
        self.models = [_tagged(name) for name in models]

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/api/chat", self._chat), ("GET", "/api/tags", self._tags)]

    def check(self, record: RecordedRequest) -> Reply | None:
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.error(401, "unauthorized")
        body = record.json
        if not isinstance(body, dict):
            return Reply.error(400, "invalid request body")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return Reply.error(400, "model is required")
        if not isinstance(body.get("messages"), list):
            return Reply.error(400, "messages is required")
        for message in body["messages"]:
            problem = self._check_message(message)
            if problem is not None:
                return Reply.error(400, problem)
        if "options" in body and not isinstance(body["options"], dict):
            return Reply.error(400, "options must be an object")
        if "format" in body and not (body["format"] in ("", "json") or isinstance(body["format"], dict)):
            return Reply.error(400, 'invalid format: expected "json" or a JSON schema')
        if _tagged(body["model"]) not in self.models:
            return Reply.error(404, f'model "{body["model"]}" not found, try pulling it first')
        return None

    def _check_message(self, message: Any) -> str | None:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "invalid message: role must be one of system, user, assistant, tool"
        if not isinstance(message.get("content", ""), str):
            return "invalid message content: expected a string"
        images = message.get("images", [])
        if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
            return "invalid message images: expected base64 strings"
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments", {}), dict):
                return (
                    "json: cannot unmarshal string into Go struct field of type api.ToolCallFunctionArguments"
                )
        return None

    async def _chat(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        problem = self.check(record)
        if problem is not None:
            return await self.respond(request, record, problem)
        texts, last_user = ollama_texts(record.json)
        call = self.make_call(
            record,
            model=str(record.json["model"]),
            stream=record.json.get("stream", True) is not False,
            texts=texts,
            last_user=last_user,
        )
        return await self.respond(request, record, call.reply, call)

    async def _tags(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return await self.respond(request, record, Reply.error(401, "unauthorized"))
        doc = {"models": [self._model_entry(index, name) for index, name in enumerate(self.models)]}
        return await self.respond(request, record, Reply.raw(200, orjson.dumps(doc)))

    def _model_entry(self, index: int, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": CREATED_AT,
            "size": 4_661_224_676 + index,
            "digest": f"{index:064x}",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": name.split(":", 1)[0].rstrip("0123456789.") or "llama",
                "families": None,
                "parameter_size": "8.0B",
                "quantization_level": "Q4_0",
            },
        }

    def error_body(self, reply: Reply) -> Any:
        return {"error": reply.message}

    def stream_headers(self, call: Call) -> dict[str, str]:
        return {"Content-Type": "application/x-ndjson"}

    def _done_reason(self, reply: Reply) -> str:
        finish = reply.finish()
        return _DONE.get(finish, finish)

    @staticmethod
    def _metrics(usage: Usage) -> dict[str, Any]:
        return {
            "total_duration": 1_500_000_000,
            "load_duration": 20_000_000,
            "prompt_eval_count": usage.input,
            "prompt_eval_duration": 100_000_000,
            "eval_count": usage.output,
            "eval_duration": 1_300_000_000,
        }

    @staticmethod
    def _tool_call(index: int, call: Any) -> dict[str, Any]:
        return {"function": {"index": index, "name": call.name, "arguments": call.arguments()}}

    def _line(self, call: Call, message: dict[str, Any], **extra: Any) -> bytes:
        doc = {"model": call.model, "created_at": CREATED_AT, "message": message, **extra}
        return orjson.dumps(doc) + b"\n"

    def render_json(self, call: Call) -> Any:
        reply = call.reply
        message: dict[str, Any] = {"role": "assistant", "content": reply.text_value or ""}
        if reply.calls:
            message["tool_calls"] = [self._tool_call(i, c) for i, c in enumerate(reply.calls)]
        return {
            "model": call.model,
            "created_at": CREATED_AT,
            "message": message,
            "done_reason": self._done_reason(reply),
            "done": True,
            **self._metrics(call.usage),
        }

    def render_stream(self, call: Call) -> list[bytes]:
        reply = call.reply
        lines = [
            self._line(call, {"role": "assistant", "content": piece}, done=False)
            for piece in reply.stream_pieces()
        ]
        for index, tool_call in enumerate(reply.calls):
            message = {"role": "assistant", "content": "", "tool_calls": [self._tool_call(index, tool_call)]}
            lines.append(self._line(call, message, done=False))
        final = {"done_reason": self._done_reason(reply), "done": True, **self._metrics(call.usage)}
        lines.append(self._line(call, {"role": "assistant", "content": ""}, **final))
        return lines

    def render_stream_error(self, call: Call) -> bytes:
        return (
            orjson.dumps({"error": call.reply.message or "an error was encountered while running the model"})
            + b"\n"
        )
