"""Turns a client's chat body into a ChatRequest, or a 400 naming the field; the body itself is kept as sent."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlsplit

import attrs
import orjson
from cattrs.gen import make_dict_structure_fn

from omnigate.chat.models import (
    ChatRequest,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    Message,
    TextPart,
    Tool,
    ToolCall,
)
from omnigate.converter import converter, structure
from omnigate.errors import InvalidRequestError

CHAT_FIELDS = frozenset(field.name for field in attrs.fields(ChatRequest)) - {"raw"}
# Fields that would let a tenant choose where a request goes or with which credential: never accepted.
SMUGGLING_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "azure_endpoint",
        "api_version",
        "headers",
        "extra_headers",
        "extra_body",
        "extra_query",
        "organization",
        "proxy",
        "proxies",
        "custom_llm_provider",
        "deployment_id",
    }
)
MAX_FALLBACK_MODELS = 5
MAX_MODEL_NAME = 256
# Visible ASCII: a model's name goes out in response headers (x-omnigate-model), where anything else
# cannot be encoded or would end the header. Every provider's model and deployment names fit.
MODEL_NAME = re.compile(rf"[\x21-\x7e]{{1,{MAX_MODEL_NAME}}}")
MODEL_NAME_RULE = f"1-{MAX_MODEL_NAME} visible ASCII characters (no spaces)"
MAX_STOP_SEQUENCES = 4
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.DOTALL)

# Nested objects ignore unknown keys: clients echo assistant messages back with fields
# (refusal, annotations, audio) that matter only to OpenAI.
for _cls in (Message, ToolCall, FunctionCall, Tool, FunctionDefinition, ImageURL, TextPart, ImagePart):
    converter.register_structure_hook(
        _cls, make_dict_structure_fn(_cls, converter, _cattrs_forbid_extra_keys=False)
    )


def _structure_part(value: Any, _: Any) -> ContentPart:
    if not isinstance(value, dict):
        raise TypeError("expected a content part object")
    kind = value.get("type")
    if kind == "text":
        return converter.structure(value, TextPart)
    if kind == "image_url":
        return converter.structure(value, ImagePart)
    raise ValueError(f"unsupported content part type {kind!r}; supported: text, image_url")


converter.register_structure_hook(ContentPart, _structure_part)


def parse_chat_request(body: Any) -> ChatRequest:
    """Validate an OpenAI-style chat body (plus omnigate's extras); unknown top-level fields pass through."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    smuggled = sorted(SMUGGLING_FIELDS & body.keys())
    if smuggled:
        raise InvalidRequestError(
            f"{smuggled[0]}: not accepted; the gateway chooses upstream endpoints and credentials",
            param=smuggled[0],
        )
    known = {key: value for key, value in body.items() if key in CHAT_FIELDS}
    known["raw"] = body
    request = structure(known, ChatRequest)
    check_request(request)
    return request


def _fail(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def check_request(request: ChatRequest) -> None:
    if not MODEL_NAME.fullmatch(request.model):
        raise _fail("model", f"must be {MODEL_NAME_RULE}")
    if not request.messages:
        raise _fail("messages", "must contain at least one message")
    _check_ranges(request)
    _check_messages(request.messages)
    _check_tools(request)
    if request.fallback_models is not None:
        if len(request.fallback_models) > MAX_FALLBACK_MODELS:
            raise _fail("fallback_models", f"at most {MAX_FALLBACK_MODELS} models")
        if not all(MODEL_NAME.fullmatch(model) for model in request.fallback_models):
            raise _fail("fallback_models", f"model names must be {MODEL_NAME_RULE}")
    if request.stream_options is not None and not request.stream:
        raise _fail("stream_options", "only allowed when stream is true")
    if request.response_format is not None:
        kind = request.response_format.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise _fail("response_format.type", "must be text, json_object or json_schema")
        if kind == "json_schema" and not isinstance(request.response_format.get("json_schema"), dict):
            raise _fail("response_format.json_schema", "required when type is json_schema")


def _check_ranges(request: ChatRequest) -> None:
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise _fail("temperature", "must be between 0 and 2")
    if request.top_p is not None and not 0 <= request.top_p <= 1:
        raise _fail("top_p", "must be between 0 and 1")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise _fail(name, "must be at least 1")
    if request.n is not None and request.n != 1:
        raise _fail("n", "only n=1 is supported")
    stops = request.stop_sequences
    if len(stops) > MAX_STOP_SEQUENCES or any(not stop for stop in stops):
        raise _fail("stop", f"at most {MAX_STOP_SEQUENCES} non-empty sequences")


def _check_messages(messages: list[Message]) -> None:
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role == "tool":
            if not message.tool_call_id:
                raise _fail(f"{where}.tool_call_id", "required for tool messages")
            if message.tool_call_id not in open_calls:
                raise _fail(
                    f"{where}.tool_call_id", f"no earlier assistant tool call has id {message.tool_call_id!r}"
                )
        elif message.role == "assistant":
            if message.tool_calls:
                for call_index, call in enumerate(message.tool_calls):
                    if not call.id:
                        raise _fail(f"{where}.tool_calls[{call_index}].id", "must not be empty")
                    open_calls.add(call.id)
            elif message.content is None:
                raise _fail(f"{where}.content", "required unless the message has tool_calls")
        elif message.content is None or message.content == [] or message.content == "":
            raise _fail(f"{where}.content", f"a {message.role} message needs content")
        if message.tool_calls and message.role != "assistant":
            raise _fail(f"{where}.tool_calls", "only assistant messages carry tool_calls")
        if isinstance(message.content, list):
            for part_index, part in enumerate(message.content):
                if isinstance(part, ImagePart):
                    if message.role != "user":
                        raise _fail(
                            f"{where}.content[{part_index}]", "images are only accepted in user messages"
                        )
                    _check_image_url(part.image_url.url, f"{where}.content[{part_index}].image_url.url")


def _check_image_url(url: str, param: str) -> None:
    match = DATA_URL.match(url)
    if match:
        try:
            base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(param, "the data URL does not hold valid base64") from None
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(param, "must be an http(s) URL or a data:image/...;base64 URL")


def _check_tools(request: ChatRequest) -> None:
    names = set()
    for index, tool in enumerate(request.tools or []):
        if not TOOL_NAME.match(tool.function.name):
            raise _fail(f"tools[{index}].function.name", "1-64 letters, digits, underscores or dashes")
        names.add(tool.function.name)
    choice = request.tool_choice
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _fail("tool_choice", "must be none, auto, required or a function object")
        if choice == "required" and not names:
            raise _fail("tool_choice", "required needs tools")
        return
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise _fail("tool_choice", 'an object must be {"type": "function", "function": {"name": ...}}')
    if name not in names:
        raise _fail("tool_choice.function.name", f"no tool named {name!r}")


def tool_call_arguments(arguments: str, param: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object, for providers that take objects; a 400 naming ``param``.

    An empty string (some clients send it for argument-less calls) means ``{}``.
    """
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(f"{param}: not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{param}: must encode a JSON object", param=param)
    return value
