"""Pure translation between the unified chat model and Anthropic Messages (request, JSON, SSE events)."""

from __future__ import annotations

from typing import Any

import orjson

from omnigate.chat.models import (
    ChatRequest,
    ChatResult,
    FinishReason,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    Message,
    StreamChunk,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from omnigate.chat.validate import DATA_URL, tool_call_arguments
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.gateway.upstream import bad_response as upstream_bad_response
from omnigate.gateway.upstream import status_error

PROVIDER = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; used when the client sets neither max_tokens nor max_completion_tokens.
DEFAULT_MAX_TOKENS = 4096
# Anthropic's temperature range is 0-1; OpenAI's 0-2 values above 1 are clamped to 1.
MAX_TEMPERATURE = 1.0
# json_object has no Anthropic equivalent (output_config.format needs a schema): ask in the system prompt.
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object only: no prose, no code fences, nothing before or after it."
)
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
USAGE_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Status an in-stream error event stands for (the stream itself is HTTP 200).
STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# -- request ------------------------------------------------------------------------------------


def build_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The Anthropic body for a validated request.

    Dropped (no Anthropic equivalent): ``seed``, ``n`` (validation allows only 1), ``stream_options``
    (Anthropic always reports usage), the omnigate-only ``fallback_models``/``cache``/``metadata``, and
    any unvalidated OpenAI field (``frequency_penalty``, ``presence_penalty``, ``logit_bias``,
    ``logprobs``, ``reasoning_effort``, ...). ``user`` becomes ``metadata.user_id``.
    """
    system, messages = translate_messages(request.messages)
    if request.response_format is not None and request.response_format.get("type") == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.output_cap or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, MAX_TEMPERATURE)
    # Claude 4.1+ models reject temperature and top_p together (400); temperature wins, as elsewhere.
    if request.top_p is not None and request.temperature is None:
        body["top_p"] = request.top_p
    if request.stop_sequences:
        body["stop_sequences"] = request.stop_sequences
    if request.tools:
        body["tools"] = [_tool(tool.function) for tool in request.tools]
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    output_format = _output_format(request.response_format)
    if output_format is not None:
        body["output_config"] = {"format": output_format}
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    return body


def translate_messages(messages: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts (from system/developer messages anywhere) and alternating user/assistant turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):
            text = message.text()
            if text:
                system.append(text)
            continue
        if message.role == "tool":
            role = "user"
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            text = message.text()
            if text:
                result["content"] = text
            blocks = [result]
        elif message.role == "assistant":
            role = "assistant"
            blocks = _content_blocks(message)
            for call_index, call in enumerate(message.tool_calls or []):
                blocks.append(
                    _tool_use(call, f"messages[{index}].tool_calls[{call_index}].function.arguments")
                )
        else:
            role = "user"
            blocks = _content_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequestError(
            "messages: Anthropic needs at least one user or assistant message besides system messages",
            param="messages",
        )
    for turn in turns:
        # Tool results must open the user turn that answers an assistant's tool_use blocks.
        if turn["role"] == "user":
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        # Anthropic rejects empty text blocks.
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": image_source(part.image_url.url)})
    return blocks


def image_source(url: str) -> dict[str, Any]:
    """A base64 source for ``data:image/...;base64,`` URLs, else a url source."""
    match = DATA_URL.match(url)
    if match:
        return {"type": "base64", "media_type": match.group(1), "data": match.group(2)}
    return {"type": "url", "url": url}


def _tool_use(call: ToolCall, param: str) -> dict[str, Any]:
    arguments = tool_call_arguments(call.function.arguments, param)
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}


def _tool(function: FunctionDefinition) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": function.name, "input_schema": function.parameters or EMPTY_SCHEMA}
    if function.description:
        tool["description"] = function.description
    if function.strict:
        tool["strict"] = True
    return tool


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        mapped: dict[str, Any] = {"type": "tool", "name": choice["function"]["name"]}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        mapped = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


def _output_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if response_format is None or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_schema", "schema": schema if isinstance(schema, dict) else {"type": "object"}}


# -- response -----------------------------------------------------------------------------------


def bad_response(detail: str) -> UpstreamError:
    return upstream_bad_response(PROVIDER, detail)


def finish_reason(stop_reason: Any) -> FinishReason:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) else 0


def _thinking(data: dict[str, Any]) -> int | None:
    details = data.get("output_tokens_details")
    return _count(details, "thinking_tokens") if isinstance(details, dict) else None


def usage_from(data: Any) -> Usage:
    """Anthropic's usage (``input_tokens`` uncached only) in the unified convention."""
    if not isinstance(data, dict):
        return Usage()
    cache_read = _count(data, "cache_read_input_tokens")
    cache_write = _count(data, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(data, "input_tokens") + cache_read + cache_write,
        output_tokens=_count(data, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=_thinking(data) or 0,
    )


def parse_response(body: bytes, model: str) -> ChatResult:
    """A whole Messages response as a ChatResult (thinking and server-tool blocks are dropped)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_response("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise bad_response("no content list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            raise bad_response("a content block is not an object")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad_response("a tool_use block lacks id or name")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(ToolCall(block["id"], FunctionCall(block["name"], arguments)))
    text = "".join(texts)
    return ChatResult(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or model),
        content=text if text or not calls else None,
        tool_calls=tuple(calls),
        finish_reason=finish_reason(data.get("stop_reason")),
        usage=usage_from(data.get("usage")),
    )


# -- stream -------------------------------------------------------------------------------------


class StreamTranslator:
    """Turns Anthropic SSE events into unified chunks; ``done`` once ``message_stop`` arrived.

    Tool-use blocks get sequential tool-call indexes (0, 1, ...) independent of the content block
    index (text and thinking blocks also take block indexes).
    """

    def __init__(self, model: str) -> None:
        self.id: str | None = None
        self.model = model
        self.done = False
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}
        self._tool_has_arguments: dict[int, bool] = {}

    def feed(self, event: str | None, data: str) -> StreamChunk | None:
        """Apply one event; returns the chunk to yield, if any. Raises UpstreamError on error events."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise bad_response(f"event {event or '?'} is not JSON") from None
        if not isinstance(doc, dict):
            raise bad_response(f"event {event or '?'} is not an object")
        kind = event or doc.get("type")
        if kind == "content_block_delta":
            return self._delta(doc)
        if kind == "content_block_start":
            return self._block_start(doc)
        if kind == "content_block_stop":
            return self._block_stop(doc)
        if kind == "message_start":
            self._message_start(doc)
        elif kind == "message_delta":
            return self._message_delta(doc)
        elif kind == "message_stop":
            self.done = True
            usage = self.usage()
            return StreamChunk(usage=usage) if usage is not None else None
        elif kind == "error":
            raise self._error(doc)
        # ping and unknown event types are ignored.
        return None

    def usage(self) -> Usage | None:
        """The usage reported so far (the whole usage once ``message_stop`` arrived)."""
        # Before any message_delta, output is message_start's own count (1 or so): the upstream's figure
        # at that moment, billed as reported rather than guessed at.
        return usage_from(self._usage) if self._usage else None

    def _merge_usage(self, data: Any) -> None:
        # message_delta counts are cumulative: any field present replaces the earlier value.
        if not isinstance(data, dict):
            return
        for key in USAGE_COUNTS:
            if isinstance(data.get(key), int):
                self._usage[key] = data[key]
        if isinstance(data.get("output_tokens_details"), dict):
            self._usage["output_tokens_details"] = data["output_tokens_details"]

    def _message_start(self, doc: dict[str, Any]) -> None:
        message = doc.get("message")
        if not isinstance(message, dict):
            raise bad_response("message_start without a message")
        if isinstance(message.get("id"), str):
            self.id = message["id"]
        if isinstance(message.get("model"), str) and message["model"]:
            self.model = message["model"]
        self._merge_usage(message.get("usage"))

    def _block_start(self, doc: dict[str, Any]) -> StreamChunk | None:
        block = doc.get("content_block")
        index = doc.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            raise bad_response("content_block_start without index or content_block")
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            return StreamChunk(text=text) if isinstance(text, str) and text else None
        if kind != "tool_use":
            return None
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise bad_response("a tool_use block lacks id or name")
        tool_index = len(self._tools)
        self._tools[index] = tool_index
        initial = block.get("input")
        arguments = orjson.dumps(initial).decode() if isinstance(initial, dict) and initial else ""
        self._tool_has_arguments[index] = bool(arguments)
        delta = ToolCallDelta(tool_index, id=block["id"], name=block["name"], arguments=arguments)
        return StreamChunk(tool_calls=(delta,))

    def _delta(self, doc: dict[str, Any]) -> StreamChunk | None:
        delta = doc.get("delta")
        if not isinstance(delta, dict):
            raise bad_response("content_block_delta without delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return StreamChunk(text=text) if isinstance(text, str) and text else None
        if kind == "input_json_delta":
            index = doc.get("index")
            piece = delta.get("partial_json")
            if not isinstance(index, int) or index not in self._tools:
                raise bad_response("input_json_delta for an unknown tool_use block")
            if not isinstance(piece, str) or not piece:
                return None
            self._tool_has_arguments[index] = True
            return StreamChunk(tool_calls=(ToolCallDelta(self._tools[index], arguments=piece),))
        # thinking_delta, signature_delta and citations_delta carry nothing the unified model relays.
        return None

    def _block_stop(self, doc: dict[str, Any]) -> StreamChunk | None:
        index = doc.get("index")
        if isinstance(index, int) and index in self._tools and not self._tool_has_arguments[index]:
            # An argument-less call streams no JSON at all; relay "{}" as the JSON response would.
            self._tool_has_arguments[index] = True
            return StreamChunk(tool_calls=(ToolCallDelta(self._tools[index], arguments="{}"),))
        return None

    def _message_delta(self, doc: dict[str, Any]) -> StreamChunk | None:
        self._merge_usage(doc.get("usage"))
        delta = doc.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop_reason is None:
            return None
        return StreamChunk(finish_reason=finish_reason(stop_reason))

    def _error(self, doc: dict[str, Any]) -> UpstreamError:
        error = doc.get("error")
        error = error if isinstance(error, dict) else {}
        kind = str(error.get("type") or "api_error")
        message = str(error.get("message") or kind)
        status = STREAM_ERROR_STATUS.get(kind, 500)
        upstream_error = status_error(PROVIDER, status, {}, f"{kind}: {message}", code=kind)
        # Mid-stream nothing is retryable; the provider re-enables overloaded_error before any chunk.
        upstream_error.retryable = False
        return upstream_error
