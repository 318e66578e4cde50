"""Pure translation between omnigate's unified chat model and Ollama's native /api/chat (request, JSON, NDJSON)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from omnigate.chat.models import (
    ChatRequest,
    ChatResult,
    FinishReason,
    FunctionCall,
    ImagePart,
    Message,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.gateway.upstream import MAX_ERROR_MESSAGE, redact
from omnigate.gateway.upstream import bad_response as upstream_bad_response

PROVIDER = "ollama"
DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(.*)$", re.DOTALL)

# Ollama's done_reason values; "load"/"unload" answer empty requests and count as a plain stop.
DONE_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}

# -- request ------------------------------------------------------------------------------------


def build_request(request: ChatRequest, model: str, keep_alive: str | float | None = None) -> dict[str, Any]:
    """The /api/chat body for a validated request.

    ``stream`` is always sent: Ollama streams when it is absent. Sampling goes into ``options``
    (``max_tokens`` is ``num_predict``). JSON mode is ``format: "json"`` and a JSON schema is
    ``format: <schema>``. Ollama has no ``tool_choice``: ``"none"`` drops the tools, any other
    choice leaves the decision to the model. Dropped (no Ollama equivalent): ``n`` (validation
    allows only 1), ``user``, ``parallel_tool_calls``, ``stream_options`` (Ollama always reports
    its counters) and the omnigate-only ``fallback_models``/``cache``/``metadata``.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": translate_messages(request.messages),
        "stream": request.stream,
    }
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.output_cap is not None:
        options["num_predict"] = request.output_cap
    if request.stop_sequences:
        options["stop"] = request.stop_sequences
    if request.seed is not None:
        options["seed"] = request.seed
    if options:
        body["options"] = options
    output_format = _format(request.response_format)
    if output_format is not None:
        body["format"] = output_format
    if request.tools and request.tool_choice != "none":
        body["tools"] = [
            _tool(tool.function.name, tool.function.description, tool.function.parameters)
            for tool in request.tools
        ]
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def translate_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """One Ollama message per unified message; tool results name their function (``tool_name``)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        text, images = _content(message, index)
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        if message.role == "assistant" and message.tool_calls:
            calls = []
            for position, call in enumerate(message.tool_calls):
                names[call.id] = call.function.name
                param = f"messages[{index}].tool_calls[{position}].function.arguments"
                arguments = _arguments_object(call.function.arguments, param)
                calls.append(
                    {"function": {"index": position, "name": call.function.name, "arguments": arguments}}
                )
            item["tool_calls"] = calls
        if message.role == "tool" and message.tool_call_id in names:
            item["tool_name"] = names[message.tool_call_id]
        out.append(item)
    return out


def _content(message: Message, index: int) -> tuple[str, list[str]]:
    """Text parts joined by newlines, and images as bare base64 (Ollama takes no URLs)."""
    content = message.content
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for position, part in enumerate(content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            match = DATA_URL.match(part.image_url.url)
            if match is None:
                param = f"messages[{index}].content[{position}].image_url.url"
                raise InvalidRequestError(
                    f"{param}: Ollama takes images inline only (a data:image/...;base64 URL), not links",
                    param=param,
                )
            images.append(match.group(1))
    return "\n".join(texts), images


def _arguments_object(raw: str, param: str) -> dict[str, Any]:
    # Ollama's arguments are a JSON object, not OpenAI's JSON-encoded string; "" means no arguments.
    if not raw.strip():
        return {}
    try:
        arguments = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(f"{param}: must be a JSON object string", param=param) from None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"{param}: must encode a JSON object", param=param)
    return arguments


def _tool(name: str, description: str | None, parameters: dict[str, Any] | None) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": name,
        "parameters": parameters or {"type": "object", "properties": {}},
    }
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def _format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else "json"
    return None


# -- response -----------------------------------------------------------------------------------


def bad_response(detail: str) -> UpstreamError:
    return upstream_bad_response(PROVIDER, detail)


def error_body(message: Any, secrets: tuple[str | None, ...] = (), *, in_stream: bool) -> UpstreamError:
    """An ``{"error": ...}`` object in a 200 answer (a stream line, or a whole body): not retryable."""
    text = redact(message, secrets)[:MAX_ERROR_MESSAGE] if isinstance(message, str) else ""
    what = f"{PROVIDER} failed mid-stream" if in_stream else f"{PROVIDER} answered with an error"
    return UpstreamError(
        f"{what}: {text}" if text else what,
        provider=PROVIDER,
        retryable=False,
        code="upstream_stream_error" if in_stream else "upstream_error",
    )


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_from(doc: dict[str, Any]) -> Usage:
    """``prompt_eval_count`` is the prompt, ``eval_count`` the generated tokens (thinking included)."""
    return Usage(input_tokens=_count(doc, "prompt_eval_count"), output_tokens=_count(doc, "eval_count"))


def finish_reason(done_reason: Any, saw_tool_calls: bool) -> FinishReason:
    # Ollama says "stop" when the model answered with tool calls; OpenAI clients expect tool_calls.
    reason = DONE_REASONS.get(done_reason, "stop") if isinstance(done_reason, str) else "stop"
    return "tool_calls" if saw_tool_calls and reason == "stop" else reason


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_calls(raw: Any) -> list[ToolCall]:
    """Ollama's tool calls (arguments as an object) as OpenAI-style calls; ids are minted when absent."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad_response("tool_calls is not a list")
    calls: list[ToolCall] = []
    for item in raw:
        function = item.get("function") if isinstance(item, dict) else None
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise bad_response("a tool call has no function name")
        arguments = function.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise bad_response("tool call arguments are not an object")
        ident = item.get("id")
        calls.append(
            ToolCall(
                ident if isinstance(ident, str) and ident else new_call_id(),
                FunctionCall(function["name"], orjson.dumps(arguments).decode()),
            )
        )
    return calls


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_response(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise bad_response(f"{what} is not an object")
    return doc


def parse_response(body: bytes, model: str, response_id: str) -> ChatResult:
    """A whole (``stream: false``) /api/chat answer; ``thinking`` is not relayed."""
    doc = load_object(body, "the response")
    if "error" in doc:
        raise error_body(doc["error"], in_stream=False)
    message = doc.get("message")
    if not isinstance(message, dict):
        raise bad_response("no message")
    calls = parse_tool_calls(message.get("tool_calls"))
    text = message.get("content")
    text = text if isinstance(text, str) else ""
    answered = doc.get("model")
    return ChatResult(
        id=response_id,
        model=answered if isinstance(answered, str) and answered else model,
        content=text if text or not calls else None,
        tool_calls=tuple(calls),
        finish_reason=finish_reason(doc.get("done_reason"), bool(calls)),
        usage=usage_from(doc),
    )


class StreamTranslator:
    """Turns NDJSON stream objects into unified chunks; ``done`` once the ``"done": true`` object arrived.

    Ollama sends each tool call whole, in one object; each becomes one tool-call delta with the next
    index. The final object may still carry text, then gives the finish reason and the counters.
    """

    def __init__(self, model: str, secrets: tuple[str | None, ...] = ()) -> None:
        self.model = model
        self.done = False
        self.usage: Usage | None = None
        self._secrets = secrets
        self._tool_calls = 0

    def feed(self, line: bytes) -> list[StreamChunk]:
        doc = load_object(line, "a stream line")
        if "error" in doc:
            raise error_body(doc["error"], self._secrets, in_stream=True)
        if isinstance(doc.get("model"), str) and doc["model"]:
            self.model = doc["model"]
        chunks: list[StreamChunk] = []
        message = doc.get("message")
        if isinstance(message, dict):
            text = message.get("content")
            deltas = tuple(
                ToolCallDelta(
                    self._next_index(), id=call.id, name=call.function.name, arguments=call.function.arguments
                )
                for call in parse_tool_calls(message.get("tool_calls"))
            )
            if (isinstance(text, str) and text) or deltas:
                chunks.append(
                    StreamChunk(text=text if isinstance(text, str) and text else None, tool_calls=deltas)
                )
        if doc.get("done") is True:
            self.done = True
            self.usage = usage_from(doc)
            chunks.append(
                StreamChunk(finish_reason=finish_reason(doc.get("done_reason"), self._tool_calls > 0))
            )
            chunks.append(StreamChunk(usage=self.usage))
        return chunks

    def _next_index(self) -> int:
        index = self._tool_calls
        self._tool_calls += 1
        return index
