"""The Anthropic provider against FakeAnthropic over real sockets: translation, JSON, SSE, errors."""

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
from omnigate.providers import anthropic as anthropic_plugin
from omnigate.providers.anthropic import AnthropicProvider
from omnigate.providers.anthropic_wire import DEFAULT_MAX_TOKENS, JSON_OBJECT_INSTRUCTION
from omnigate.settings import parse_settings
from omnigate.testing.fakes import FakeAnthropic, Reply, ToolCall
from omnigate.testing.fakes import Usage as FakeUsage

KEY = "sk-ant-test-0123456789abcdefghij"
MODEL = "claude-test-1"
USER = [{"role": "user", "content": "Hi there"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as server:
        yield server


def make_provider(base_url: str, key: str | None = KEY) -> AnthropicProvider:
    values = {"ANTHROPIC_BASE_URL": base_url, "UPSTREAM_TIMEOUT_S": "5"}
    if key is not None:
        values["ANTHROPIC_API_KEY"] = key
    return AnthropicProvider(parse_settings(values))


@pytest.fixture
async def provider(fake: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    instance = make_provider(fake.base_url)
    yield instance
    await instance.aclose()


def make_call(**body: Any) -> Call:
    body = {"model": MODEL, "messages": USER, **body}
    return Call(
        request_id="t",
        principal=None,
        request=parse_chat_request(body),
        target=Target("anthropic", MODEL),
        deadline=time.monotonic() + 30,
    )


async def complete(provider: AnthropicProvider, **body: Any) -> ChatResult:
    result = await provider.send(make_call(**body), provider.gateway_credential())
    assert isinstance(result, ChatResult)
    return result


async def open_stream(provider: AnthropicProvider, **body: Any) -> ChatStream:
    stream = await provider.send(make_call(stream=True, **body), provider.gateway_credential())
    assert isinstance(stream, ChatStream)
    return stream


async def collect(stream: ChatStream) -> list[StreamChunk]:
    try:
        return [chunk async for chunk in stream]
    finally:
        await stream.aclose()


async def sent(provider: AnthropicProvider, fake: FakeAnthropic, **body: Any) -> dict[str, Any]:
    """The Anthropic body the provider sent for this OpenAI-style body."""
    await complete(provider, **body)
    payload = fake.requests[-1].json
    assert isinstance(payload, dict)
    return payload


def sse(*events: tuple[str, dict[str, Any]]) -> Reply:
    body = b"".join(b"event: " + n.encode() + b"\ndata: " + orjson.dumps(d) + b"\n\n" for n, d in events)
    return Reply.raw(200, body, content_type="text/event-stream")


def start(usage: dict[str, int] | None = None) -> tuple[str, dict[str, Any]]:
    message = {"id": "msg_raw", "type": "message", "role": "assistant", "model": "claude-raw", "content": []}
    return "message_start", {"type": "message_start", "message": {**message, "usage": usage or {}}}


def block(index: int, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": content}


def delta(index: int, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": content}


def stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def message_delta(reason: str, usage: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "message_delta", {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": usage}


MESSAGE_STOP = ("message_stop", {"type": "message_stop"})


def tool_deltas(chunks: list[StreamChunk]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for piece in chunk.tool_calls:
            if piece.index not in calls:
                assert piece.id is not None and piece.name is not None, "first piece carries id and name"
                calls[piece.index] = {"id": piece.id, "name": piece.name, "arguments": ""}
            calls[piece.index]["arguments"] += piece.arguments
    return calls


# -- plain text -----------------------------------------------------------------------------------


async def test_plain_text_json(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text("Hello from Claude", model="claude-test-1-20260101"))
    result = await complete(provider)
    assert result.content == "Hello from Claude"
    assert result.finish_reason == "stop" and result.tool_calls == ()
    assert result.id.startswith("msg_fake") and result.model == "claude-test-1-20260101"
    record = fake.requests[-1]
    assert record.path == "/v1/messages"
    assert record.headers["x-api-key"] == KEY and record.headers["anthropic-version"] == "2023-06-01"
    assert record.json == {
        "model": MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
    }


async def test_streamed_text_arrives_before_upstream_finishes(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["Hel", "lo ", "world"], chunk_delay_s=0.1, model="claude-test-1-x"))
    stream = await open_stream(provider)
    assert stream.model == MODEL
    iterator = aiter(stream)
    first = await anext(iterator)
    assert first.text == "Hel"
    assert not fake.requests[-1].completed, "the first chunk must arrive while the upstream still streams"
    assert stream.id.startswith("msg_fake") and stream.model == "claude-test-1-x"
    rest = await collect(stream)
    chunks = [first, *rest]
    assert "".join(c.text or "" for c in chunks) == "Hello world"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and chunks[-1].usage is usages[0]
    assert fake.requests[-1].json["stream"] is True


# -- request translation --------------------------------------------------------------------------


async def test_system_and_developer_messages_become_top_level_system(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "Again"},
    ]
    body = await sent(provider, fake, messages=messages)
    assert body["system"] == "Be brief.\n\nUse French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Again"}]}
    ]


async def test_multi_turn_history_merges_same_role_turns(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "assistant", "content": [{"type": "text", "text": "Three"}]},
        {"role": "user", "content": "Four"},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Five"}]},
    ]
    body = await sent(provider, fake, messages=messages)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Two"}, {"type": "text", "text": "Three"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "Four"}, {"type": "text", "text": "Five"}]},
    ]


async def test_only_system_messages_is_invalid(provider: AnthropicProvider) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await complete(provider, messages=[{"role": "system", "content": "Alone"}])
    assert info.value.param == "messages"


async def test_sampling_params_and_limits(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    body = await sent(
        provider,
        fake,
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=300,
        max_tokens=50,
        stop="###",
        seed=7,
        n=1,
        user="end-user-1",
        presence_penalty=0.5,
        frequency_penalty=0.5,
        logprobs=True,
    )
    assert body["temperature"] == 0.3 and "top_p" not in body, "newer Claude models reject both"
    assert body["max_tokens"] == 300, "max_completion_tokens wins over max_tokens"
    assert body["stop_sequences"] == ["###"]
    assert body["metadata"] == {"user_id": "end-user-1"}
    for dropped in ("seed", "n", "stop", "presence_penalty", "frequency_penalty", "logprobs", "user"):
        assert dropped not in body
    body = await sent(provider, fake, temperature=1.7, max_tokens=50, stop=["a", "b"])
    assert body["temperature"] == 1.0, "clamped to Anthropic's 0-1 range"
    assert body["max_tokens"] == 50 and body["stop_sequences"] == ["a", "b"]
    body = await sent(provider, fake, top_p=0.9)
    assert body["top_p"] == 0.9 and "temperature" not in body


async def test_json_object_mode_adds_a_system_instruction(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    body = await sent(provider, fake, messages=messages, response_format={"type": "json_object"})
    assert body["system"] == "Be brief.\n\n" + JSON_OBJECT_INSTRUCTION
    assert "output_config" not in body and "response_format" not in body
    body = await sent(provider, fake, response_format={"type": "text"})
    assert "system" not in body and "output_config" not in body


async def test_json_schema_becomes_output_config(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    body = await sent(provider, fake, response_format=response_format)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in body


async def test_tool_definitions(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    body = await sent(provider, fake, tools=[WEATHER, CLOCK])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            False,
            {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
async def test_tool_choice(
    provider: AnthropicProvider, fake: FakeAnthropic, tool_choice: Any, parallel: Any, expected: Any
) -> None:
    extra: dict[str, Any] = {"tools": [WEATHER, CLOCK]}
    if tool_choice is not None:
        extra["tool_choice"] = tool_choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    body = await sent(provider, fake, **extra)
    assert body.get("tool_choice") == expected


async def test_tool_choice_without_tools_is_dropped(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    body = await sent(provider, fake, tool_choice="auto", parallel_tool_calls=False)
    assert "tool_choice" not in body and "tools" not in body


HISTORY = [
    {"role": "user", "content": "Weather in Paris and Rome? And the time?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            },
            {"id": "toolu_3", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_1", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "sunny"}]},
    {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
    {"role": "user", "content": "Thanks, and tomorrow?"},
]


async def test_tool_calls_and_results_in_history(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    body = await sent(provider, fake, messages=HISTORY, tools=[WEATHER, CLOCK])
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome? And the time?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                {"type": "tool_use", "id": "toolu_3", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp_c": 21}'},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_3"},
                {"type": "text", "text": "Thanks, and tomorrow?"},
            ],
        },
    ]


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", "null"])
async def test_invalid_tool_call_arguments_name_the_field(
    provider: AnthropicProvider, fake: FakeAnthropic, arguments: str
) -> None:
    messages: list[dict[str, Any]] = [dict(m) for m in HISTORY[:3]]
    calls = [dict(c) for c in messages[1]["tool_calls"]][:1]
    calls.append(
        {"id": "toolu_9", "type": "function", "function": {"name": "get_time", "arguments": arguments}}
    )
    messages[1] = {**messages[1], "tool_calls": calls}
    with pytest.raises(InvalidRequestError) as info:
        await complete(provider, messages=messages, tools=[WEATHER, CLOCK])
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"
    assert fake.request_count == 0


async def test_image_inputs(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}},
    ]
    body = await sent(provider, fake, messages=[{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
    ]


# -- tool calls out -------------------------------------------------------------------------------

CALLS = [ToolCall.of("toolu_a", "get_weather", {"city": "Paris"}), ToolCall.of("toolu_b", "get_time", {})]


async def test_parallel_tool_calls_json(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.tool_calls(CALLS, text="Let me check."))
    result = await complete(provider, tools=[WEATHER, CLOCK])
    assert result.content == "Let me check." and result.finish_reason == "tool_calls"
    assert [(c.id, c.function.name) for c in result.tool_calls] == [
        ("toolu_a", "get_weather"),
        ("toolu_b", "get_time"),
    ]
    assert [orjson.loads(c.function.arguments) for c in result.tool_calls] == [{"city": "Paris"}, {}]
    fake.enqueue(Reply.tool_calls(CALLS[:1]))
    result = await complete(provider, tools=[WEATHER, CLOCK])
    assert result.content is None and len(result.tool_calls) == 1


async def test_parallel_tool_calls_streamed(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.tool_calls(CALLS, text="Let me check."))
    chunks = await collect(await open_stream(provider, tools=[WEATHER, CLOCK]))
    assert "".join(c.text or "" for c in chunks) == "Let me check."
    calls = tool_deltas(chunks)
    assert sorted(calls) == [0, 1], "tool indexes count tool calls, not content blocks"
    assert calls[0]["id"] == "toolu_a" and calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert calls[1]["id"] == "toolu_b" and orjson.loads(calls[1]["arguments"]) == {}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_stream_skips_thinking_and_fills_empty_tool_arguments(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(
        sse(
            start({"input_tokens": 5, "output_tokens": 1}),
            block(0, {"type": "thinking", "thinking": ""}),
            delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
            delta(0, {"type": "signature_delta", "signature": "sig"}),
            stop(0),
            ("ping", {"type": "ping"}),
            block(1, {"type": "tool_use", "id": "toolu_x", "name": "get_time", "input": {}}),
            delta(1, {"type": "input_json_delta", "partial_json": ""}),
            stop(1),
            ("future_event", {"type": "future_event"}),
            message_delta("tool_use", {"output_tokens": 9}),
            MESSAGE_STOP,
        )
    )
    stream = await open_stream(provider, tools=[CLOCK])
    chunks = await collect(stream)
    assert stream.id == "msg_raw" and stream.model == "claude-raw"
    assert all(c.text is None for c in chunks)
    assert tool_deltas(chunks) == {0: {"id": "toolu_x", "name": "get_time", "arguments": "{}"}}
    assert chunks[-1].usage == Usage(input_tokens=5, output_tokens=9)


# -- finish reasons and usage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.text("x", finish_reason="length"), "length"),
        (Reply.text("x", finish_reason="content_filter"), "content_filter"),
        (Reply.text("x", stop_sequence="###"), "stop"),
        (Reply.text("x", finish_reason="pause_turn"), "stop"),
        (Reply.text("x", finish_reason="model_context_window_exceeded"), "length"),
        (Reply.text("x", finish_reason="something_new"), "stop"),
    ],
)
async def test_finish_reasons(
    provider: AnthropicProvider, fake: FakeAnthropic, reply: Reply, expected: str
) -> None:
    fake.enqueue(reply, reply)
    assert (await complete(provider)).finish_reason == expected
    chunks = await collect(await open_stream(provider))
    assert [c.finish_reason for c in chunks if c.finish_reason] == [expected]


async def test_usage_with_cache_read_and_write(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    usage = FakeUsage(input=100, output=20, cache_read=30, cache_write=10)
    expected = Usage(input_tokens=100, output_tokens=20, cache_read_tokens=30, cache_write_tokens=10)
    fake.enqueue(Reply.text("x", usage=usage), Reply.text("x", usage=usage))
    assert (await complete(provider)).usage == expected
    chunks = await collect(await open_stream(provider))
    assert [c.usage for c in chunks if c.usage is not None] == [expected]


async def test_reasoning_tokens(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    usage = {
        "input_tokens": 4,
        "cache_read_input_tokens": 2,
        "cache_creation_input_tokens": None,
        "output_tokens": 50,
        "output_tokens_details": {"thinking_tokens": 35},
    }
    body = {
        "id": "msg_r",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {"type": "thinking", "thinking": "...", "signature": "s"},
            {"type": "text", "text": "42"},
        ],
        "stop_reason": "end_turn",
        "usage": usage,
    }
    fake.enqueue(Reply.raw(200, orjson.dumps(body)))
    result = await complete(provider)
    assert result.content == "42"
    assert result.usage == Usage(input_tokens=6, output_tokens=50, cache_read_tokens=2, reasoning_tokens=35)
    fake.enqueue(
        sse(
            start({"input_tokens": 4, "cache_read_input_tokens": 2, "output_tokens": 1}),
            block(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "42"}),
            stop(0),
            message_delta("end_turn", {"output_tokens": 40}),
            message_delta(
                "end_turn", {"output_tokens": 50, "output_tokens_details": {"thinking_tokens": 35}}
            ),
            MESSAGE_STOP,
        )
    )
    chunks = await collect(await open_stream(provider))
    assert [c.usage for c in chunks if c.usage is not None] == [result.usage]


# -- errors ---------------------------------------------------------------------------------------


async def test_400_message_passed_through(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.error(400, "messages.0.content: text blocks must be non-empty"))
    with pytest.raises(UpstreamError) as info:
        await complete(provider)
    error = info.value
    assert "text blocks must be non-empty" in error.message
    assert error.status_code == 400 and error.upstream_status == 400 and not error.retryable


async def test_401_hides_upstream_text_and_key(fake: FakeAnthropic) -> None:
    provider = make_provider(fake.base_url, key="sk-ant-wrong-key-000000000000")
    try:
        with pytest.raises(UpstreamError) as info:
            await complete(provider)
    finally:
        await provider.aclose()
    error = info.value
    assert error.code == "upstream_authentication_failed" and not error.retryable
    assert fake.requests[-1].status == 401
    for text in (str(error), error.message, repr(error), str(error.envelope())):
        assert "invalid x-api-key" not in text and "sk-ant-wrong" not in text


async def test_401_echoing_the_key_stays_secret(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.error(401, f"invalid x-api-key {KEY}"))
    with pytest.raises(UpstreamError) as info:
        await complete(provider)
    assert KEY not in str(info.value) and KEY[:8] not in str(info.value.envelope())


async def test_429_retry_after(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.error(429, "Number of request tokens has exceeded your rate limit", retry_after=3))
    with pytest.raises(UpstreamError) as info:
        await complete(provider)
    assert info.value.retryable and info.value.retry_after_s == 3 and info.value.status_code == 429


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retryable(
    provider: AnthropicProvider, fake: FakeAnthropic, status: int
) -> None:
    fake.enqueue(Reply.error(status, "Overloaded"))
    with pytest.raises(UpstreamError) as info:
        await open_stream(provider)
    assert info.value.retryable and info.value.upstream_status == status


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(UpstreamError) as info:
            await complete(provider)
    finally:
        await provider.aclose()
    assert info.value.retryable and info.value.code == "upstream_unavailable"


async def test_malformed_json_body(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.raw(200, b"<html>gateway</html>", content_type="text/html"))
    with pytest.raises(UpstreamError) as info:
        await complete(provider)
    assert info.value.code == "upstream_bad_response"
    fake.enqueue(Reply.raw(200, b'{"type": "message"}'))
    with pytest.raises(UpstreamError) as info:
        await complete(provider)
    assert info.value.code == "upstream_bad_response"


async def test_json_body_for_a_stream_request(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.raw(200, b'{"type": "message", "content": []}'))
    with pytest.raises(UpstreamError) as info:
        await open_stream(provider)
    assert info.value.code == "upstream_bad_response"


async def test_overloaded_event_before_any_chunk_is_retryable(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text("a b c", error_after=2))
    stream = await open_stream(provider)
    with pytest.raises(UpstreamError) as info:
        await collect(stream)
    assert info.value.retryable and info.value.code == "overloaded_error"
    assert "Overloaded" in info.value.message and info.value.status_code == 503


async def test_error_event_after_a_chunk_is_not_retryable(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text("a b c", error_after=4, error_type="api_error", message="Internal"))
    stream = await open_stream(provider)
    seen: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in stream:
            seen.append(chunk)
    await stream.aclose()
    assert [c.text for c in seen] == ["a "]
    assert not info.value.retryable and "Internal" in info.value.message


async def test_cut_mid_stream_raises(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.text("one two three four", cut_after=5))
    stream = await open_stream(provider)
    seen: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in stream:
            seen.append(chunk)
    await stream.aclose()
    assert seen and not info.value.retryable


async def test_stream_ending_without_message_stop_is_truncated(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(
        sse(
            start({"input_tokens": 3}),
            block(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "partial"}),
            message_delta("end_turn", {"output_tokens": 2}),
        )
    )
    stream = await open_stream(provider)
    seen: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in stream:
            seen.append(chunk)
    assert info.value.code == "upstream_stream_truncated" and not info.value.retryable
    assert all(c.usage is None for c in seen), "no usage chunk for a truncated stream"
    await stream.aclose()


async def test_non_json_event_is_a_bad_response(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.raw(200, b"event: message_start\ndata: {oops\n\n", content_type="text/event-stream"))
    with pytest.raises(UpstreamError) as info:
        await collect(await open_stream(provider))
    assert info.value.code == "upstream_bad_response"


async def test_closing_a_stream_early_disconnects_upstream(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["a", "b", "c", "d", "e", "f"], chunk_delay_s=0.1))
    stream = await open_stream(provider)
    async for chunk in stream:
        assert chunk.text == "a"
        break
    await stream.aclose()
    await stream.aclose()
    await fake.wait_disconnected(timeout_s=3)
    assert fake.requests[-1].disconnected and not fake.requests[-1].completed


async def test_closing_from_another_task_ends_the_stream(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text("a b", stall_after=4))
    stream = await open_stream(provider)

    async def consume() -> list[StreamChunk]:
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await stream.aclose()
    with pytest.raises(UpstreamError):
        await asyncio.wait_for(task, 3)
    await fake.wait_disconnected(timeout_s=3)


# -- credentials and registration -----------------------------------------------------------------


async def test_project_credential_is_used(fake: FakeAnthropic) -> None:
    provider = make_provider(fake.base_url, key=None)
    try:
        assert provider.gateway_credential() is None
        with pytest.raises(UpstreamError) as info:
            await provider.send(make_call(), None)
        assert info.value.code == "upstream_credential_missing"
        result = await provider.send(make_call(), Credential(KEY, source="project"))
        assert isinstance(result, ChatResult)
    finally:
        await provider.aclose()
    assert fake.requests[-1].headers["x-api-key"] == KEY


async def test_registration() -> None:
    registry = ProviderRegistry()
    settings = parse_settings({"ANTHROPIC_API_KEY": KEY})
    anthropic_plugin.omnigate_register_providers(registry=registry, settings=settings)
    (spec,) = registry.specs()
    assert spec.name == "anthropic" and spec.model_prefixes == ("claude-",)
    provider = spec.factory(PluginContext(settings))
    try:
        assert provider.name == "anthropic" and provider.requires_credential
        credential = provider.gateway_credential()
        assert credential is not None and credential.api_key == KEY and KEY not in repr(credential)
    finally:
        await provider.aclose()


async def test_closing_an_unread_stream_disconnects_upstream(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply.text(["a", "b", "c"], chunk_delay_s=0.2))
    stream = await open_stream(provider)
    await stream.aclose()
    await fake.wait_disconnected(timeout_s=3)
    assert [chunk async for chunk in stream] == []
