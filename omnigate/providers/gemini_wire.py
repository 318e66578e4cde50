"""Pure Gemini v1beta translation: ChatRequest to a generateContent body, responses and stream chunks back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

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
from omnigate.gateway.upstream import MAX_ERROR_MESSAGE, redact
from omnigate.gateway.upstream import bad_response as upstream_bad_response

PROVIDER = "gemini"
# Google's documented stand-in for a functionCall whose real thought signature is unknown: Gemini 3 rejects
# a step whose first functionCall part has none, and the unified ToolCall has no field to carry the real
# one back (it is dropped from responses), so every replayed step gets this value on its first call.
SKIP_SIGNATURE = "skip_thought_signature_validator"
CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}
ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


# -- request ------------------------------------------------------------------------------------


def build_request(request: ChatRequest) -> dict[str, Any]:
    """The generateContent body for a validated request (the model goes in the URL, not the body)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        if message.role == "tool":
            role, parts = "user", [_function_response(message, index, call_names)]
        elif message.role == "assistant":
            role, parts = "model", _model_parts(message, index, call_names)
        else:
            role, parts = "user", _user_parts(message)
        if not parts:
            continue
        # Gemini wants alternating turns: consecutive same-role messages (several tool results,
        # a tool result followed by user text) become one turn.
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise InvalidRequestError(
            "messages: Gemini needs at least one user or assistant message with content", param="messages"
        )
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(tool.function) for tool in request.tools]}]
        tool_config = _tool_config(request.tool_choice)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    return body


def _text_parts(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"text": message.content}] if message.content else []
    return [{"text": part.text} for part in message.content or [] if isinstance(part, TextPart) and part.text]


def _user_parts(message: Message) -> list[dict[str, Any]]:
    if not isinstance(message.content, list):
        return _text_parts(message)
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            parts.append(_image_part(part.image_url.url))
        elif part.text:
            parts.append({"text": part.text})
    return parts


def _image_part(url: str) -> dict[str, Any]:
    match = DATA_URL.match(url)
    if match:
        return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}
    # omnigate never fetches URLs itself (no SSRF surface): Gemini gets the URI as fileData.
    extension = urlsplit(url).path.rsplit(".", 1)[-1].lower()
    return {"fileData": {"mimeType": IMAGE_TYPES.get(extension, "image/jpeg"), "fileUri": url}}


def _model_parts(message: Message, index: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    parts = _text_parts(message)
    for call_index, call in enumerate(message.tool_calls or []):
        call_names[call.id] = call.function.name
        param = f"messages[{index}].tool_calls[{call_index}].function.arguments"
        part: dict[str, Any] = {
            "functionCall": {
                "name": call.function.name,
                "args": tool_call_arguments(call.function.arguments, param),
            }
        }
        if call_index == 0:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _function_response(message: Message, index: int, call_names: dict[str, str]) -> dict[str, Any]:
    # Gemini pairs results with calls by function name (ids are not sent: the ones clients hold were
    # synthesised by omnigate or came from another provider).
    name = call_names.get(message.tool_call_id or "")
    if name is None:
        param = f"messages[{index}].tool_call_id"
        raise InvalidRequestError(f"{param}: no earlier assistant tool call has this id", param=param)
    text = message.text()
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    response = value if isinstance(value, dict) else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.output_cap is not None:
        config["maxOutputTokens"] = request.output_cap
    if request.stop_sequences:
        config["stopSequences"] = request.stop_sequences
    if request.seed is not None:
        config["seed"] = request.seed
    response_format = request.response_format or {}
    kind = response_format.get("type")
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


def _declaration(function: FunctionDefinition) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    if function.parameters is not None:
        # parametersJsonSchema takes full JSON Schema; plain `parameters` is an OpenAPI subset that
        # rejects keywords clients commonly send (additionalProperties, $ref, anyOf, const, ...).
        declaration["parametersJsonSchema"] = function.parameters
    return declaration


def _tool_config(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    name = choice["function"]["name"]
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


# -- response -----------------------------------------------------------------------------------


def bad_response(detail: str) -> UpstreamError:
    return upstream_bad_response(PROVIDER, detail)


def error_event(error: Any, secrets: Iterable[str | None]) -> UpstreamError:
    """The UpstreamError for an ``{"error": ...}`` document inside a 200 response or stream."""
    message = error.get("message") if isinstance(error, dict) else error
    text = redact(str(message or "unknown error"), secrets)[:MAX_ERROR_MESSAGE]
    code = error.get("code") if isinstance(error, dict) else None
    return UpstreamError(
        f"{PROVIDER} stream error: {text}",
        status=code if isinstance(code, int) else None,
        provider=PROVIDER,
        code="upstream_stream_error",
    )


def usage_from(meta: Any) -> Usage:
    """Usage from ``usageMetadata``: thinking tokens are output (billed so), cached tokens part of input."""
    if not isinstance(meta, dict):
        return Usage()

    def count(field: str) -> int:
        value = meta.get(field)
        return value if isinstance(value, int) and value > 0 else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(
        input_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        output_tokens=count("candidatesTokenCount") + thoughts,
        cache_read_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def map_finish(reason: str, has_calls: bool) -> FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    # STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ... end the answer normally.
    return "tool_calls" if has_calls else "stop"


def prompt_blocked(doc: dict[str, Any]) -> bool:
    feedback = doc.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def id_prefix(doc: dict[str, Any]) -> str:
    """Gemini sends no call ids: synthesised ones are ``call_<responseId>_<n>`` (random when it has none)."""
    response_id = doc.get("responseId")
    prefix = ID_UNSAFE.sub("", response_id)[:24] if isinstance(response_id, str) else ""
    return prefix or uuid.uuid4().hex[:24]


def call_id(function_call: dict[str, Any], prefix: str, number: int) -> str:
    given = function_call.get("id")
    return given if isinstance(given, str) and given else f"call_{prefix}_{number}"


def first_candidate(doc: dict[str, Any]) -> dict[str, Any] | None:
    candidates = doc.get("candidates")
    if candidates is None or candidates == []:
        return None
    if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
        raise bad_response("candidates is not a list of objects")
    return candidates[0]


def split_parts(candidate: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """A candidate's answer text pieces and functionCall objects (thought summaries are skipped)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            texts.append(text)
        function_call = part.get("functionCall")
        if isinstance(function_call, dict):
            if not isinstance(function_call.get("name"), str):
                raise bad_response("functionCall without a name")
            calls.append(function_call)
    return texts, calls


def arguments_json(function_call: dict[str, Any]) -> str:
    args = function_call.get("args")
    return orjson.dumps(args if isinstance(args, dict) else {}).decode()


def parse_response(doc: Any, model: str, secrets: Iterable[str | None] = ()) -> ChatResult:
    """A whole generateContent response as a ChatResult."""
    if not isinstance(doc, dict):
        raise bad_response("not a JSON object")
    if doc.get("error") is not None:
        raise error_event(doc["error"], secrets)
    response_id = doc.get("responseId")
    result_id = response_id if isinstance(response_id, str) and response_id else f"gemini-{uuid.uuid4().hex}"
    version = doc.get("modelVersion")
    model = version if isinstance(version, str) and version else model
    usage = usage_from(doc.get("usageMetadata"))
    candidate = first_candidate(doc)
    if candidate is None:
        if prompt_blocked(doc):
            return ChatResult(
                id=result_id, model=model, content="", finish_reason="content_filter", usage=usage
            )
        raise bad_response("no candidates")
    texts, calls = split_parts(candidate)
    prefix = id_prefix(doc)
    tool_calls = tuple(
        ToolCall(id=call_id(call, prefix, n), function=FunctionCall(call["name"], arguments_json(call)))
        for n, call in enumerate(calls)
    )
    reason = candidate.get("finishReason")
    return ChatResult(
        id=result_id,
        model=model,
        content="".join(texts) if texts or not tool_calls else None,
        tool_calls=tool_calls,
        finish_reason=map_finish(reason if isinstance(reason, str) else "STOP", bool(tool_calls)),
        usage=usage,
    )


class StreamTranslator:
    """Turns streamGenerateContent documents into StreamChunks, one document at a time.

    ``finished`` says whether a candidate carried a finishReason (or the prompt was blocked): only then
    is a stream complete. ``usage`` is the last ``usageMetadata`` seen (Gemini's counts are cumulative).
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = tuple(secrets)
        self.finished = False
        self.usage: Usage | None = None
        self._calls = 0
        self._prefix: str | None = None

    def reported(self) -> Usage | None:
        """The usage reported so far: every chunk's ``usageMetadata`` counts the whole answer to it."""
        return self.usage

    def feed(self, doc: Any) -> StreamChunk | None:
        if not isinstance(doc, dict):
            raise bad_response("stream event is not a JSON object")
        if doc.get("error") is not None:
            raise error_event(doc["error"], self.secrets)
        if "usageMetadata" in doc:
            self.usage = usage_from(doc["usageMetadata"])
        candidate = first_candidate(doc)
        if candidate is None:
            if prompt_blocked(doc) and not self.finished:
                self.finished = True
                return StreamChunk(finish_reason="content_filter")
            return None
        texts, calls = split_parts(candidate)
        deltas: list[ToolCallDelta] = []
        if calls and self._prefix is None:
            self._prefix = id_prefix(doc)
        for call in calls:
            # Gemini sends each call whole, so one delta carries id, name and the full arguments.
            call_index = self._calls
            self._calls += 1
            call_ref = call_id(call, self._prefix or "", call_index)
            deltas.append(ToolCallDelta(call_index, call_ref, call["name"], arguments_json(call)))
        finish: FinishReason | None = None
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason and not self.finished:
            self.finished = True
            finish = map_finish(reason, self._calls > 0)
        text = "".join(texts)
        if not text and not deltas and finish is None:
            return None
        return StreamChunk(text=text or None, tool_calls=tuple(deltas), finish_reason=finish)
