"""The Gemini provider against FakeGemini over real sockets, plus the pure translation in gemini_wire."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from omnigate.chat.models import ChatResult, ChatStream, Credential, StreamChunk, Target, Usage
from omnigate.chat.validate import parse_chat_request
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.plugin.interfaces import Call, PluginContext
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers import gemini as gemini_module
from omnigate.providers.gemini import GeminiProvider
from omnigate.providers.gemini_wire import SKIP_SIGNATURE, StreamTranslator, build_request
from omnigate.settings import parse_settings
from omnigate.testing.fakes import FakeGemini, Reply, ToolCall
from omnigate.testing.fakes import Usage as FakeUsage

KEY = "AIzaSy-test-0123456789abcdefghij"
CREDENTIAL = Credential(api_key=KEY, source="project")
MODEL = "gemini-2.5-flash"
HELLO = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
TOOL_HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and Rome, and the time?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
            {"id": "c3", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "c2", "content": "sunny, 25 C"},
    {"role": "tool", "tool_call_id": "c3", "content": [{"type": "text", "text": "[1, 2]"}]},
    {"role": "user", "content": "Thanks"},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=KEY) as server:
        yield server


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    settings = parse_settings({"GEMINI_BASE_URL": fake.base_url, "GEMINI_API_KEY": KEY})
    instance = GeminiProvider(settings)
    yield instance
    await instance.aclose()


def make_call(body: dict[str, Any], model: str = MODEL) -> Call:
    request = parse_chat_request({"model": model, "messages": HELLO, **body})
    return Call(
        request_id="t",
        principal=None,
        request=request,
        target=Target("gemini", model),
        deadline=time.monotonic() + 30,
    )


async def send_json(provider: GeminiProvider, body: dict[str, Any]) -> ChatResult:
    result = await provider.send(make_call(body), CREDENTIAL)
    assert isinstance(result, ChatResult)
    return result


async def open_stream(provider: GeminiProvider, body: dict[str, Any]) -> ChatStream:
    stream = await provider.send(make_call({**body, "stream": True}), CREDENTIAL)
    assert isinstance(stream, ChatStream)
    return stream


async def collect(provider: GeminiProvider, body: dict[str, Any]) -> list[StreamChunk]:
    stream = await open_stream(provider, body)
    try:
        return [chunk async for chunk in stream]
    finally:
        await stream.aclose()


def sse(*docs: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(doc) + b"\r\n\r\n" for doc in docs)


def wire(body: dict[str, Any]) -> dict[str, Any]:
    return build_request(parse_chat_request({"model": MODEL, "messages": HELLO, **body}))


# -- plain text ---------------------------------------------------------------------------------


async def test_plain_text_json(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.text("Warsaw is the capital.", usage=FakeUsage(input=12, output=4)))
    result = await send_json(provider, {})
    assert result.content == "Warsaw is the capital."
    assert result.finish_reason == "stop"
    assert result.tool_calls == ()
    assert result.model == MODEL
    assert result.id.startswith("fake")
    assert result.usage == Usage(input_tokens=12, output_tokens=4)
    record = fake.requests[-1]
    assert record.path == f"/v1beta/models/{MODEL}:generateContent"
    assert record.headers["x-goog-api-key"] == KEY
    assert "key" not in record.query
    assert record.json == {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


async def test_streamed_text_arrives_before_upstream_finishes(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(Reply.text(["Hel", "lo ", "world"], chunk_delay_s=0.15, usage=FakeUsage(input=9, output=3)))
    stream = await open_stream(provider, {})
    record = fake.requests[-1]
    assert record.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert record.query == {"alt": "sse"}
    assert record.headers["x-goog-api-key"] == KEY
    try:
        first = await anext(aiter(stream))
        assert first.text == "Hel"
        assert not record.completed
        rest = [chunk async for chunk in stream]
    finally:
        await stream.aclose()
    chunks = [first, *rest]
    assert "".join(c.text or "" for c in chunks) == "Hello world"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usages = [c.usage for c in chunks if c.usage is not None]
    assert usages == [Usage(input_tokens=9, output_tokens=3)]
    assert chunks[-1].usage is not None
    assert record.completed


# -- request translation ------------------------------------------------------------------------


async def test_system_prompts_and_multi_turn_history(provider: GeminiProvider, fake: FakeGemini) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "First question."},
        {"role": "user", "content": [{"type": "text", "text": "Second part."}]},
    ]
    await send_json(provider, {"messages": messages})
    body = fake.requests[-1].json
    assert body["systemInstruction"] == {
        "parts": [{"text": "Answer briefly."}, {"text": "Use metric units."}]
    }
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello! How can I help?"}]},
        {"role": "user", "parts": [{"text": "First question."}, {"text": "Second part."}]},
    ]


async def test_sampling_params_translated(provider: GeminiProvider, fake: FakeGemini) -> None:
    body = {"temperature": 0.3, "top_p": 0.9, "max_completion_tokens": 77, "stop": ["###", "END"], "seed": 42}
    await send_json(provider, body)
    assert fake.requests[-1].json["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.9,
        "maxOutputTokens": 77,
        "stopSequences": ["###", "END"],
        "seed": 42,
    }
    await send_json(provider, {"max_tokens": 12, "stop": "\n\n"})
    assert fake.requests[-1].json["generationConfig"] == {"maxOutputTokens": 12, "stopSequences": ["\n\n"]}


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert wire({"max_tokens": 5, "max_completion_tokens": 9})["generationConfig"] == {"maxOutputTokens": 9}


async def test_json_mode_and_json_schema(provider: GeminiProvider, fake: FakeGemini) -> None:
    await send_json(provider, {"response_format": {"type": "json_object"}})
    assert fake.requests[-1].json["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    await send_json(provider, {"response_format": response_format})
    assert fake.requests[-1].json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert "generationConfig" not in wire({"response_format": {"type": "text"}})


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        (None, None),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
async def test_tools_and_tool_choice(
    provider: GeminiProvider, fake: FakeGemini, tool_choice: Any, expected: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"tools": [WEATHER_TOOL, TIME_TOOL]}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    await send_json(provider, body)
    sent = fake.requests[-1].json
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                },
                {"name": "get_time"},
            ]
        }
    ]
    if expected is None:
        assert "toolConfig" not in sent
    else:
        assert sent["toolConfig"] == {"functionCallingConfig": expected}


async def test_tool_calls_and_results_in_history(provider: GeminiProvider, fake: FakeGemini) -> None:
    await send_json(provider, {"messages": TOOL_HISTORY, "tools": [WEATHER_TOOL, TIME_TOOL]})
    contents = fake.requests[-1].json["contents"]
    assert contents == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome, and the time?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SKIP_SIGNATURE,
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 25 C"}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "[1, 2]"}}},
                {"text": "Thanks"},
            ],
        },
    ]


@pytest.mark.parametrize("arguments", ['{"city": "Paris"', "[1, 2]"])
async def test_invalid_tool_call_arguments_name_the_field(
    provider: GeminiProvider, fake: FakeGemini, arguments: str
) -> None:
    messages = list(TOOL_HISTORY)
    messages[1] = {
        **messages[1],
        "tool_calls": [
            TOOL_HISTORY[1]["tool_calls"][0],
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": arguments}},
            TOOL_HISTORY[1]["tool_calls"][2],
        ],
    }
    with pytest.raises(InvalidRequestError) as caught:
        await send_json(provider, {"messages": messages})
    assert caught.value.param == "messages[1].tool_calls[1].function.arguments"
    assert caught.value.param in caught.value.message
    assert fake.requests == []


async def test_image_inputs(provider: GeminiProvider, fake: FakeGemini) -> None:
    content = [
        {"type": "text", "text": "Compare these"},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.com/a/cat.PNG?size=large", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    await send_json(provider, {"messages": [{"role": "user", "content": content}]})
    assert fake.requests[-1].json["contents"][0]["parts"] == [
        {"text": "Compare these"},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a/cat.PNG?size=large"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
    ]


def test_only_system_messages_is_rejected() -> None:
    request = parse_chat_request({"model": MODEL, "messages": [{"role": "system", "content": "Be nice."}]})
    with pytest.raises(InvalidRequestError) as caught:
        build_request(request)
    assert caught.value.param == "messages"


# -- tool calls in responses --------------------------------------------------------------------

PARALLEL = [ToolCall.of("x", "get_weather", {"city": "Paris"}), ToolCall.of("y", "get_time", {})]


async def test_parallel_tool_calls_json(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.tool_calls(PARALLEL))
    result = await send_json(provider, {"tools": [WEATHER_TOOL, TIME_TOOL]})
    assert result.finish_reason == "tool_calls"
    assert result.content is None
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    ids = [c.id for c in result.tool_calls]
    assert ids == [f"call_{result.id}_0", f"call_{result.id}_1"]


async def test_tool_call_with_text_json(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.tool_calls(PARALLEL[:1], text="Let me check."))
    result = await send_json(provider, {"tools": [WEATHER_TOOL]})
    assert result.content == "Let me check."
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1


async def test_parallel_tool_calls_streamed(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.tool_calls(PARALLEL, text="On it."))
    chunks = await collect(provider, {"tools": [WEATHER_TOOL, TIME_TOOL]})
    deltas = [delta for chunk in chunks for delta in chunk.tool_calls]
    assert [d.index for d in deltas] == [0, 1]
    assert [d.name for d in deltas] == ["get_weather", "get_time"]
    assert [orjson.loads(d.arguments) for d in deltas] == [{"city": "Paris"}, {}]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert len({d.id for d in deltas}) == 2
    assert "".join(c.text or "" for c in chunks) == "On it."
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_upstream_function_call_ids_are_kept(provider: GeminiProvider, fake: FakeGemini) -> None:
    doc = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {
                            "functionCall": {"id": "fc-7", "name": "get_time", "args": {}},
                            "thoughtSignature": "c2ln",
                        },
                    ],
                },
                "finishReason": "STOP",
            }
        ],
        "modelVersion": "gemini-2.5-flash-001",
    }
    fake.enqueue(Reply.raw(200, orjson.dumps(doc)))
    result = await send_json(provider, {"tools": [TIME_TOOL]})
    assert [c.id for c in result.tool_calls] == ["fc-7"]
    assert result.content is None
    assert result.model == "gemini-2.5-flash-001"
    assert result.usage == Usage()


# -- finish reasons and usage -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
async def test_finish_reasons(
    provider: GeminiProvider, fake: FakeGemini, upstream: str, expected: str
) -> None:
    fake.enqueue(Reply.text("partial", finish_reason=upstream))
    assert (await send_json(provider, {})).finish_reason == expected
    fake.enqueue(Reply.text("partial", finish_reason=upstream))
    chunks = await collect(provider, {})
    assert [c.finish_reason for c in chunks if c.finish_reason] == [expected]


async def test_blocked_prompt(provider: GeminiProvider, fake: FakeGemini) -> None:
    doc = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }
    fake.enqueue(Reply.raw(200, orjson.dumps(doc)))
    result = await send_json(provider, {})
    assert (result.content, result.finish_reason, result.usage) == (
        "",
        "content_filter",
        Usage(input_tokens=7),
    )
    fake.enqueue(Reply.raw(200, sse(doc), content_type="text/event-stream"))
    chunks = await collect(provider, {})
    assert chunks == [StreamChunk(finish_reason="content_filter"), StreamChunk(usage=Usage(input_tokens=7))]


async def test_usage_with_cache_and_reasoning(provider: GeminiProvider, fake: FakeGemini) -> None:
    usage = FakeUsage(input=100, output=30, cache_read=40, cache_write=5, reasoning=12)
    expected = Usage(input_tokens=100, output_tokens=30, cache_read_tokens=40, reasoning_tokens=12)
    fake.enqueue(Reply.text("one two three", usage=usage))
    assert (await send_json(provider, {})).usage == expected
    fake.enqueue(Reply.text("one two three", usage=usage))
    chunks = await collect(provider, {})
    assert [c.usage for c in chunks if c.usage is not None] == [expected]
    assert chunks[-1].usage == expected


def test_stream_usage_is_the_last_cumulative_value() -> None:
    translator = StreamTranslator()
    part = {"content": {"parts": [{"text": "a"}], "role": "model"}}
    translator.feed({"candidates": [part], "usageMetadata": {"promptTokenCount": 5, "thoughtsTokenCount": 3}})
    translator.feed(
        {"candidates": [part], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}
    )
    assert not translator.finished
    last = {
        "promptTokenCount": 5,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": 3,
        "cachedContentTokenCount": 2,
    }
    chunk = translator.feed({"candidates": [{**part, "finishReason": "STOP"}], "usageMetadata": last})
    assert chunk == StreamChunk(text="a", finish_reason="stop")
    assert translator.finished
    assert translator.usage == Usage(input_tokens=5, output_tokens=7, cache_read_tokens=2, reasoning_tokens=3)


# -- errors -------------------------------------------------------------------------------------


async def test_400_message_passed_through_without_key(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.error(400, f"* GenerateContentRequest.generation_config: bad value near {KEY}"))
    with pytest.raises(UpstreamError) as caught:
        await send_json(provider, {})
    error = caught.value
    assert error.status_code == 400
    assert not error.retryable
    assert "GenerateContentRequest.generation_config: bad value" in error.message
    assert KEY not in str(error) and KEY[:8] not in str(error)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_hides_upstream_text(
    provider: GeminiProvider, fake: FakeGemini, status: int
) -> None:
    fake.enqueue(Reply.error(status, f"API key {KEY} not valid. Please pass a valid API key."))
    with pytest.raises(UpstreamError) as caught:
        await send_json(provider, {})
    error = caught.value
    assert error.code == "upstream_authentication_failed"
    assert "not valid" not in error.message
    assert KEY not in str(error) and KEY not in repr(error.__dict__)


async def test_wrong_key_is_an_upstream_error(provider: GeminiProvider, fake: FakeGemini) -> None:
    with pytest.raises(UpstreamError) as caught:
        await provider.send(make_call({}), Credential(api_key="AIza-wrong-key-000000000"))
    assert caught.value.upstream_status == 400
    assert "wrong-key" not in str(caught.value)


async def test_429_with_retry_after(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.error(429, "Resource has been exhausted (e.g. check quota).", retry_after=7))
    with pytest.raises(UpstreamError) as caught:
        await send_json(provider, {})
    assert caught.value.retryable
    assert caught.value.retry_after_s == 7
    assert caught.value.status_code == 429


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retryable(provider: GeminiProvider, fake: FakeGemini, status: int) -> None:
    fake.enqueue(Reply.error(status, "The model is overloaded. Please try again later."))
    with pytest.raises(UpstreamError) as caught:
        await send_json(provider, {})
    assert caught.value.retryable
    assert caught.value.upstream_status == status


async def test_errors_before_a_stream_are_raised_by_send(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.error(503, "overloaded"))
    with pytest.raises(UpstreamError) as caught:
        await open_stream(provider, {})
    assert caught.value.retryable


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = GeminiProvider(parse_settings({"GEMINI_BASE_URL": f"http://127.0.0.1:{port}"}))
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.send(make_call({}), CREDENTIAL)
    finally:
        await provider.aclose()
    assert caught.value.retryable
    assert caught.value.code == "upstream_unavailable"


async def test_malformed_json_body(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.raw(200, b"<html>oops</html>", content_type="text/html"))
    with pytest.raises(UpstreamError) as caught:
        await send_json(provider, {})
    assert caught.value.code == "upstream_bad_response"


async def test_cut_mid_stream_raises_while_iterating(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.text("one two three four", cut_after=2))
    stream = await open_stream(provider, {})
    received: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream:
            received.append(chunk)
    await stream.aclose()
    assert "".join(c.text or "" for c in received) == "one two "
    assert not caught.value.retryable


async def test_clean_close_without_finish_reason_is_truncation(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    doc = {"candidates": [{"content": {"parts": [{"text": "half an"}], "role": "model"}, "index": 0}]}
    fake.enqueue(Reply.raw(200, sse(doc), content_type="text/event-stream"))
    stream = await open_stream(provider, {})
    received: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream:
            received.append(chunk)
    assert caught.value.code == "upstream_stream_truncated"
    assert received == [StreamChunk(text="half an")]


async def test_error_event_mid_stream(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.text("one two three", error_after=1, message="Internal error encountered."))
    stream = await open_stream(provider, {})
    received: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream:
            received.append(chunk)
    await stream.aclose()
    assert "Internal error encountered." in caught.value.message
    assert not caught.value.retryable
    assert [c.text for c in received] == ["one "]


async def test_closing_a_stream_early_disconnects_upstream(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.enqueue(Reply.text("a b c d e f g h", chunk_delay_s=0.2))
    stream = await open_stream(provider, {})
    first = await anext(aiter(stream))
    assert first.text == "a "
    await stream.aclose()
    await stream.aclose()
    await fake.wait_disconnected(timeout_s=5)
    assert fake.requests[-1].disconnected
    assert not fake.requests[-1].completed


async def test_close_while_waiting_for_data(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.enqueue(Reply.text("a b", stall_after=1))
    stream = await open_stream(provider, {})
    iterator = aiter(stream)
    await anext(iterator)
    pending = asyncio.ensure_future(anext(iterator))
    await asyncio.sleep(0.05)
    await stream.aclose()
    with pytest.raises(UpstreamError):
        await asyncio.wait_for(pending, 5)
    await fake.wait_disconnected(timeout_s=5)


# -- registration and credentials ---------------------------------------------------------------


async def test_registration_and_gateway_credential() -> None:
    settings = parse_settings({"GEMINI_API_KEY": KEY})
    registry = ProviderRegistry()
    gemini_module.omnigate_register_providers(registry=registry, settings=settings)
    (spec,) = registry.specs()
    assert (spec.name, spec.model_prefixes) == ("gemini", ("gemini-",))
    provider = spec.factory(PluginContext(settings))
    try:
        assert provider.name == "gemini" and provider.requires_credential
        credential = provider.gateway_credential()
        assert credential is not None and credential.api_key == KEY and credential.source == "gateway"
        assert KEY not in repr(credential)
    finally:
        await provider.aclose()
    bare = GeminiProvider(parse_settings({}))
    try:
        assert bare.gateway_credential() is None
    finally:
        await bare.aclose()


async def test_gateway_key_used_when_no_credential_given(provider: GeminiProvider, fake: FakeGemini) -> None:
    result = await provider.send(make_call({}), None)
    assert isinstance(result, ChatResult)
    assert fake.requests[-1].headers["x-goog-api-key"] == KEY
