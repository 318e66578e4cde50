"""OpenAI Chat Completions wire translation (shared by OpenAI and Azure): body, JSON result, SSE chunks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import orjson

from omnigate.chat.models import (
    OPENAI_CHAT,
    ChatRequest,
    ChatResult,
    FinishReason,
    FunctionCall,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from omnigate.errors import UpstreamError
from omnigate.gateway.upstream import MAX_ERROR_MESSAGE, bad_response, redact

# Fields only omnigate understands: OpenAI would reject or misread them.
OMNIGATE_ONLY_FIELDS = frozenset({"fallback_models", "cache", "metadata"})
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
}
DONE = "[DONE]"


def request_body(request: ChatRequest, model: str | None) -> dict[str, Any]:
    """The client's body as sent, minus omnigate's fields; ``model`` set (or removed when None).

    Streams always ask for usage, whatever the client asked; its other stream options are kept.
    """
    source = request.raw or _plain(request)
    body = {key: value for key, value in source.items() if key not in OMNIGATE_ONLY_FIELDS}
    if model is None:
        body.pop("model", None)
    else:
        body["model"] = model
    if request.stream:
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return body


def _plain(request: ChatRequest) -> dict[str, Any]:
    """A request built without a client body (internal callers): the model as JSON, unset fields left out."""
    return attrs.asdict(request, filter=lambda field, value: value is not None and field.name != "raw")


def _loads(provider: str, data: bytes | str) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_response(provider, "not JSON") from None
    if not isinstance(doc, dict):
        raise bad_response(provider, "not a JSON object")
    return doc


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_usage(usage: dict[str, Any]) -> Usage:
    """OpenAI usage: prompt_tokens includes cached tokens, completion_tokens includes reasoning tokens."""
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else 0
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cache_read_tokens=_count(cached),
        cache_write_tokens=0,
        reasoning_tokens=_count(reasoning),
    )


def finish_reason(value: Any) -> FinishReason | None:
    """OpenAI's finish reason; a reason newer than this code counts as ``stop``."""
    if value is None:
        return None
    return FINISH_REASONS.get(value, "stop") if isinstance(value, str) else "stop"


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return None


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else orjson.dumps(value).decode()


def _tool_calls(provider: str, raw: Any) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_response(provider, "tool_calls is not a list")
    calls = []
    for item in raw:
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_response(provider, "a tool call has no function name")
        call_id = item.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) else "",
                function=FunctionCall(name=function["name"], arguments=_arguments(function.get("arguments"))),
            )
        )
    return tuple(calls)


def parse_result(
    provider: str, data: bytes, fallback_model: str, passthrough: str | None = None
) -> ChatResult:
    """A chat completion document as a ChatResult (the first choice); with ``passthrough`` (the client
    speaks OpenAI) it also keeps the document as it came."""
    doc = _loads(provider, data)
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad_response(provider, "no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise bad_response(provider, "the choice has no message")
    content = _text(message.get("content"))
    refusal = message.get("refusal")
    # The unified model has no refusal field: a refusal is the answer's text, so clients see it.
    if not content and isinstance(refusal, str) and refusal:
        content = refusal
    usage = doc.get("usage")
    ident, model = doc.get("id"), doc.get("model")
    return ChatResult(
        id=ident if isinstance(ident, str) else "",
        model=model if isinstance(model, str) and model else fallback_model,
        content=content,
        tool_calls=_tool_calls(provider, message.get("tool_calls")),
        finish_reason=finish_reason(choices[0].get("finish_reason")) or "stop",
        usage=parse_usage(usage) if isinstance(usage, dict) else Usage(),
        raw=data if passthrough == OPENAI_CHAT else b"",
        raw_wire=OPENAI_CHAT if passthrough == OPENAI_CHAT else None,
    )


def stream_error(provider: str, error: Any, secrets: Iterable[str | None]) -> UpstreamError:
    """An error event inside a stream (after the 200 was received): not retryable."""
    message = error.get("message") if isinstance(error, dict) else error
    text = redact(message, secrets)[:MAX_ERROR_MESSAGE] if isinstance(message, str) else ""
    return UpstreamError(
        f"{provider} failed mid-stream: {text}" if text else f"{provider} failed mid-stream",
        provider=provider,
        retryable=False,
        code="upstream_stream_error",
    )


class StreamParser:
    """Turns the data of each SSE event into at most one StreamChunk.

    Usage is held back and returned by :meth:`final` after ``[DONE]``, so exactly one chunk
    carries it even if an upstream repeats usage on several chunks.
    """

    def __init__(self, provider: str, secrets: Iterable[str | None] = ()) -> None:
        self.provider = provider
        self.secrets = tuple(secrets)
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.answering = False  # an event with a choice arrived (Azure opens with a choice-less prelude)

    def feed(self, data: str) -> StreamChunk | None:
        if data.strip() == DONE:
            self.done = True
            return None
        doc = _loads(self.provider, data)
        if doc.get("error"):
            raise stream_error(self.provider, doc["error"], self.secrets)
        # vLLM and other OpenAI-compatible servers send {"object": "error", "message": ...} instead.
        if doc.get("object") == "error":
            raise stream_error(self.provider, doc, self.secrets)
        if self.id is None and isinstance(doc.get("id"), str) and doc["id"]:
            self.id = doc["id"]
        if self.model is None and isinstance(doc.get("model"), str) and doc["model"]:
            self.model = doc["model"]
        usage = doc.get("usage")
        if isinstance(usage, dict):
            self.usage = parse_usage(usage)
        choices = doc.get("choices")
        # Azure sends a prelude with empty choices (prompt filter results) and annotation-only choices.
        if not isinstance(choices, list) or not choices:
            return None
        self.answering = True
        choice = choices[0]
        if not isinstance(choice, dict):
            raise bad_response(self.provider, "a stream choice is not an object")
        delta = choice.get("delta")
        text, calls = self._delta(delta) if isinstance(delta, dict) else (None, ())
        finish = finish_reason(choice.get("finish_reason"))
        if not text and not calls and finish is None:
            return None
        return StreamChunk(text=text or None, tool_calls=calls, finish_reason=finish)

    def _delta(self, delta: dict[str, Any]) -> tuple[str | None, tuple[ToolCallDelta, ...]]:
        text = delta.get("content")
        refusal = delta.get("refusal")
        if not text and isinstance(refusal, str):
            text = refusal
        raw_calls = delta.get("tool_calls")
        calls: list[ToolCallDelta] = []
        for position, item in enumerate(raw_calls if isinstance(raw_calls, list) else ()):
            if not isinstance(item, dict):
                raise bad_response(self.provider, "a tool call delta is not an object")
            function = item.get("function")
            function = function if isinstance(function, dict) else {}
            index, ident, name = item.get("index"), item.get("id"), function.get("name")
            calls.append(
                ToolCallDelta(
                    index=index if isinstance(index, int) and not isinstance(index, bool) else position,
                    id=ident if isinstance(ident, str) and ident else None,
                    name=name if isinstance(name, str) and name else None,
                    arguments=_arguments(function.get("arguments")),
                )
            )
        return (text if isinstance(text, str) else None), tuple(calls)

    def final(self) -> StreamChunk | None:
        """The one usage chunk once the body has ended (None when the upstream reported none); a body
        that ended without ``[DONE]`` raises: a cut stream never looks like a clean end."""
        if not self.done:
            raise UpstreamError(
                f"{self.provider} ended the stream without [DONE]",
                provider=self.provider,
                retryable=False,
                code="upstream_stream_truncated",
            )
        return StreamChunk(usage=self.usage) if self.usage is not None else None
