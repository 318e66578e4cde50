"""The OpenAI provider against FakeOpenAI over real sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from omnigate.chat.models import OPENAI_CHAT, ChatResult, ChatStream, Credential, StreamChunk, Target, Usage
from omnigate.chat.validate import parse_chat_request
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.plugin.interfaces import Call
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers import openai as openai_module
from omnigate.providers.openai import OpenAIProvider
from omnigate.providers.openai_passthrough import is_plain
from omnigate.providers.openai_wire import StreamParser, request_body
from omnigate.settings import parse_settings
from omnigate.testing.fakes import FakeOpenAI, Reply, ToolCall
from omnigate.testing.fakes import Usage as FakeUsage

KEY = "sk-test-0123456789abcdefghij"
CREDENTIAL = Credential(api_key=KEY, source="project")
HELLO = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    settings = parse_settings({"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": KEY})
    instance = OpenAIProvider(settings)
    yield instance
    await instance.aclose()


def make_call(body: dict[str, Any], model: str = "gpt-4o-mini") -> Call:
    request = parse_chat_request({"model": model, "messages": HELLO, **body})
    return Call(
        request_id="t",
        principal=None,
        request=request,
        target=Target("openai", model.removeprefix("openai/")),
        deadline=time.monotonic() + 30,
    )


async def send_json(provider: OpenAIProvider, body: dict[str, Any], model: str = "gpt-4o-mini") -> ChatResult:
    result = await provider.send(make_call(body, model), CREDENTIAL)
    assert isinstance(result, ChatResult)
    return result


async def open_stream(provider: OpenAIProvider, body: dict[str, Any]) -> ChatStream:
    result = await provider.send(make_call({**body, "stream": True}), CREDENTIAL)
    assert isinstance(result, ChatStream)
    return result


async def collect(stream: ChatStream) -> list[StreamChunk]:
    try:
        return [chunk async for chunk in stream]
    finally:
        await stream.aclose()


def text_of(chunks: list[StreamChunk]) -> str:
    return "".join(chunk.text or "" for chunk in chunks)


def assemble_calls(chunks: list[StreamChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            if delta.index not in calls:
                assert delta.id is not None and delta.name is not None, "first piece carries id and name"
                calls[delta.index] = {"id": delta.id, "name": delta.name, "arguments": ""}
            calls[delta.index]["arguments"] += delta.arguments
    return calls


# -- plain JSON and the forwarded body ---------------------------------------------------------


async def test_text_json(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("Hi there!", model="gpt-4o-mini-2024-07-18", usage=FakeUsage(12, 3)))
    result = await send_json(provider, {})
    assert result.content == "Hi there!"
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.id.startswith("chatcmpl-")
    assert result.finish_reason == "stop"
    assert result.tool_calls == ()
    assert result.usage == Usage(input_tokens=12, output_tokens=3)
    record = fake.requests[-1]
    assert record.path == "/v1/chat/completions"
    assert record.headers["authorization"] == f"Bearer {KEY}"
    assert record.json["model"] == "gpt-4o-mini"
    assert "stream_options" not in record.json


async def test_body_forwarded_as_sent_minus_omnigate_fields(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer", "refusal": None},
            {"role": "user", "content": "second question"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "max_completion_tokens": 60,
        "stop": ["###", "END"],
        "seed": 42,
        "user": "user-1",
        "logit_bias": {"50256": -100},
        "reasoning_effort": "low",
        "frequency_penalty": 0.5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "fallback_models": ["claude-sonnet-4"],
        "cache": True,
        "metadata": {"trace": "abc"},
    }
    await send_json(provider, body, model="openai/gpt-4o")
    sent = fake.requests[-1].json
    expected = {
        key: value for key, value in body.items() if key not in ("fallback_models", "cache", "metadata")
    }
    assert sent == {**expected, "model": "gpt-4o"}


async def test_target_model_replaces_client_model(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    call = make_call({"response_format": {"type": "json_object"}}, model="gpt-4o")
    call.target = Target("openai", "gpt-4.1")  # as a fallback policy would
    await provider.send(call, CREDENTIAL)
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-4.1"
    assert sent["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    "tool_choice",
    ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}],
)
async def test_tools_and_tool_choice_pass_through(
    provider: OpenAIProvider, fake: FakeOpenAI, tool_choice: Any
) -> None:
    body = {"tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": tool_choice, "parallel_tool_calls": False}
    await send_json(provider, body)
    sent = fake.requests[-1].json
    assert sent["tools"] == [WEATHER_TOOL, TIME_TOOL]
    assert sent["tool_choice"] == tool_choice
    assert sent["parallel_tool_calls"] is False


async def test_tool_calls_and_results_in_history(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    messages = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c":21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": '{"temp_c":25}'}]},
    ]
    fake.enqueue(Reply.text("Paris 21, Rome 25."))
    result = await send_json(provider, {"messages": messages, "tools": [WEATHER_TOOL]})
    assert result.content == "Paris 21, Rome 25."
    assert fake.requests[-1].json["messages"] == messages


async def test_image_inputs_pass_through(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    content = [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL}},
    ]
    await send_json(provider, {"messages": [{"role": "user", "content": content}]})
    assert fake.requests[-1].json["messages"][0]["content"] == content


def test_request_body_without_raw_uses_the_model() -> None:
    request = parse_chat_request({"model": "gpt-4o", "messages": HELLO, "temperature": 0.5, "cache": True})
    bare = attrs.evolve(request, raw={})
    body = request_body(bare, "gpt-4o")
    assert body["messages"] == [{"role": "user", "content": "hello there"}]
    assert body["temperature"] == 0.5
    assert "cache" not in body and "raw" not in body and "top_p" not in body


# -- tool calls, finish reasons, usage ---------------------------------------------------------


async def test_parallel_tool_calls_json(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    calls = [ToolCall.of("call_a", "get_weather", {"city": "Paris"}), ToolCall.of("call_b", "get_time", {})]
    fake.enqueue(Reply.tool_calls(calls))
    result = await send_json(provider, {"tools": [WEATHER_TOOL, TIME_TOOL]})
    assert result.finish_reason == "tool_calls"
    assert result.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in result.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", "{}"),
    ]


async def test_parallel_tool_calls_streamed(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    calls = [
        ToolCall.of("call_a", "get_weather", {"city": "Paris", "unit": "celsius"}),
        ToolCall.of("call_b", "get_weather", {"city": "Rome"}),
    ]
    fake.enqueue(Reply.tool_calls(calls, text="Checking."))
    chunks = await collect(await open_stream(provider, {"tools": [WEATHER_TOOL]}))
    assert text_of(chunks) == "Checking."
    assembled = assemble_calls(chunks)
    assert assembled == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
        1: {"id": "call_b", "name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    pieces = [delta for chunk in chunks for delta in chunk.tool_calls]
    assert len(pieces) > 2 and all(p.id is None and p.name is None for p in pieces if p.arguments)
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("reason", ["length", "content_filter", "tool_calls", "stop"])
async def test_finish_reasons(provider: OpenAIProvider, fake: FakeOpenAI, reason: str) -> None:
    fake.enqueue(Reply.text("cut", finish_reason=reason), Reply.text("cut", finish_reason=reason))
    assert (await send_json(provider, {})).finish_reason == reason
    chunks = await collect(await open_stream(provider, {}))
    assert [c.finish_reason for c in chunks if c.finish_reason] == [reason]


async def test_unknown_and_legacy_finish_reasons(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("x", finish_reason="function_call"), Reply.text("x", finish_reason="brand_new"))
    assert (await send_json(provider, {})).finish_reason == "tool_calls"
    assert (await send_json(provider, {})).finish_reason == "stop"


async def test_usage_with_cache_and_reasoning(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    usage = FakeUsage(input=120, output=40, cache_read=64, reasoning=30)
    fake.enqueue(Reply.text("deep thought", usage=usage), Reply.text("deep thought", usage=usage))
    expected = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=64, reasoning_tokens=30)
    assert (await send_json(provider, {}, model="o3-mini")).usage == expected
    chunks = await collect(await open_stream(provider, {}))
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert [c.usage for c in usage_chunks] == [expected]
    assert chunks[-1] is usage_chunks[0]


# -- streaming -----------------------------------------------------------------------------------


async def test_stream_arrives_incrementally(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text(["Hello", ", ", "world", "!"], chunk_delay_s=0.2, model="gpt-4o-2024-08-06"))
    stream = await open_stream(provider, {"stream_options": {"include_obfuscation": False}})
    assert stream.id == "" and stream.model == "gpt-4o-mini"
    iterator = aget_iter(stream)
    first = await iterator.__anext__()
    assert first.text == "Hello"
    assert not fake.requests[-1].completed, "the first chunk must arrive while the upstream is still sending"
    assert stream.id.startswith("chatcmpl-") and stream.model == "gpt-4o-2024-08-06"
    rest = await collect(stream)
    chunks = [first, *rest]
    assert text_of(chunks) == "Hello, world!"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert sum(1 for c in chunks if c.usage is not None) == 1
    assert fake.requests[-1].json["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert fake.requests[-1].completed


def aget_iter(stream: ChatStream) -> AsyncIterator[StreamChunk]:
    return stream.__aiter__()


async def test_stream_forces_include_usage(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    await collect(await open_stream(provider, {"stream_options": {"include_usage": False}}))
    sent = fake.requests[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_finished_streams_reuse_the_connection(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    for _ in range(3):
        await collect(await open_stream(provider, {}))
        await send_json(provider, {})
    assert fake.connections == 1


async def test_stream_cut_midway_raises(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("one two three four five", cut_after=3))
    stream = await open_stream(provider, {})
    with pytest.raises(UpstreamError) as info:
        await collect(stream)
    assert info.value.retryable is False


async def test_stream_without_done_is_truncated(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    chunk = b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    fake.enqueue(Reply.raw(200, chunk, content_type="text/event-stream"))
    stream = await open_stream(provider, {})
    seen: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as info:
        async for item in stream:
            seen.append(item)
    await stream.aclose()
    assert text_of(seen) == "hi"
    assert info.value.code == "upstream_stream_truncated"


async def test_stream_error_event_raises(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("a b c d", error_after=2, message=f"overloaded for {KEY}"))
    stream = await open_stream(provider, {})
    with pytest.raises(UpstreamError) as info:
        await collect(stream)
    assert info.value.code == "upstream_stream_error"
    assert "overloaded" in info.value.message
    assert KEY not in str(info.value) and KEY[:8] not in str(info.value)


# vLLM (and other OpenAI-compatible servers) report a failure inside a stream without an "error" key.
VLLM_CHUNK = b'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
VLLM_ERROR = (
    b'data: {"object":"error","message":"out of KV cache, key '
    + KEY.encode()
    + b'","type":"InternalServerError","param":null,"code":500}\n\n'
)
VLLM_STREAM = VLLM_CHUNK + VLLM_ERROR + b"data: [DONE]\n\n"


async def stream_until_error(
    provider: OpenAIProvider, passthrough: bool
) -> tuple[list[StreamChunk], UpstreamError]:
    call = make_call({"stream": True})
    call.passthrough = OPENAI_CHAT if passthrough else None
    stream = await provider.send(call, CREDENTIAL)
    assert isinstance(stream, ChatStream)
    seen: list[StreamChunk] = []
    with pytest.raises(UpstreamError) as info:
        async for item in stream:
            seen.append(item)
    await stream.aclose()
    return seen, info.value


@pytest.mark.parametrize("passthrough", [False, True])
async def test_an_object_error_event_mid_stream_raises(
    provider: OpenAIProvider, fake: FakeOpenAI, passthrough: bool
) -> None:
    fake.enqueue(Reply.raw(200, VLLM_STREAM, content_type="text/event-stream"))
    seen, error = await stream_until_error(provider, passthrough)
    if passthrough:
        assert b"".join(chunk.raw for chunk in seen) == VLLM_CHUNK
    else:
        assert text_of(seen) == "partial"
    assert not any(chunk.finish_reason or chunk.usage for chunk in seen)
    assert error.code == "upstream_stream_error" and not error.retryable
    assert "out of KV cache" in error.message
    assert KEY not in str(error) and KEY[:8] not in str(error)


def test_an_object_error_event_is_never_relayed_unread() -> None:
    assert is_plain(VLLM_CHUNK.removesuffix(b"\n\n"))
    assert not is_plain(VLLM_ERROR.removesuffix(b"\n\n"))
    with_a_choice = b'data: {"object":"error","message":"x","choices":[{"finish_reason":null}]}'
    assert not is_plain(with_a_choice)


def test_stream_parser_raises_on_an_object_error_document() -> None:
    parser = StreamParser("openai", [KEY])
    with pytest.raises(UpstreamError) as info:
        parser.feed('{"object":"error","message":"bad request","type":"BadRequestError","code":400}')
    assert info.value.code == "upstream_stream_error" and "bad request" in info.value.message
    # Only "object": "error" means an error: ordinary chunks are not affected.
    assert parser.feed(
        '{"object":"chat.completion.chunk","choices":[{"delta":{"content":"a"}}]}'
    ) == StreamChunk(text="a")


async def test_an_object_error_body_with_status_200_is_an_upstream_error(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    body = b'{"object":"error","message":"model overloaded","type":"InternalServerError","param":null,"code":500}'
    fake.enqueue(Reply.raw(200, body))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, {})
    assert info.value.code == "upstream_bad_response" and not info.value.retryable


async def test_stream_bad_json_raises(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.raw(200, b"data: {not json\n\n", content_type="text/event-stream"))
    with pytest.raises(UpstreamError) as info:
        await collect(await open_stream(provider, {}))
    assert info.value.code == "upstream_bad_response"


async def test_closing_stream_early_disconnects(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("word " * 50, chunk_delay_s=0.05))
    stream = await open_stream(provider, {})
    iterator = aget_iter(stream)
    await iterator.__anext__()
    await stream.aclose()
    await stream.aclose()  # idempotent
    await fake.wait_disconnected(timeout_s=3)
    assert fake.requests[-1].disconnected
    with pytest.raises(UpstreamError):
        await iterator.__anext__()


async def test_closing_unread_stream(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("word " * 50, chunk_delay_s=0.05))
    stream = await open_stream(provider, {})
    await stream.aclose()
    await fake.wait_disconnected(timeout_s=3)


def test_stream_parser_skips_empty_chunks_and_keeps_last_usage() -> None:
    parser = StreamParser("openai")
    assert parser.feed('{"id":"","choices":[],"prompt_filter_results":[]}') is None
    assert (
        parser.feed('{"id":"c","choices":[{"index":0,"finish_reason":null,"content_filter_results":{}}]}')
        is None
    )
    assert parser.feed('{"id":"c","choices":[{"index":0,"delta":{"refusal":"I cannot."}}]}') == StreamChunk(
        text="I cannot."
    )
    parser.feed('{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}')
    parser.feed('{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}')
    assert parser.feed("[DONE]") is None and parser.done
    assert parser.final() == StreamChunk(usage=Usage(input_tokens=5, output_tokens=2))
    assert parser.id == "c"


# -- errors ----------------------------------------------------------------------------------------


async def test_400_message_passed_through(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.error(400, "Unsupported parameter: 'max_tokens'", code="unsupported_parameter"))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, {"max_tokens": 5}, model="o3")
    error = info.value
    assert error.upstream_status == 400 and error.status_code == 400
    assert "Unsupported parameter: 'max_tokens'" in error.message
    assert error.retryable is False


async def test_401_hides_upstream_text_and_key(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    wrong = Credential(api_key="sk-wrong-key-abcdefghijklmnop", source="project")
    with pytest.raises(UpstreamError) as info:
        await provider.send(make_call({}), wrong)
    error = info.value
    assert error.code == "upstream_authentication_failed"
    assert "Incorrect API key" not in error.message
    assert "sk-wrong" not in str(error) and "sk-wrong" not in repr(error.__dict__)
    assert fake.requests[-1].status == 401


async def test_429_retry_after(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.error(429, "Rate limit reached", retry_after=7))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, {})
    assert info.value.retryable is True
    assert info.value.retry_after_s == 7
    assert info.value.status_code == 429


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_are_retryable(provider: OpenAIProvider, fake: FakeOpenAI, status: int) -> None:
    fake.enqueue(Reply.error(status, "The server had an error"))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, {})
    assert info.value.retryable is True
    assert info.value.upstream_status == status


async def test_stream_request_error_before_body(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.error(503, "busy"))
    with pytest.raises(UpstreamError) as info:
        await open_stream(provider, {})
    assert info.value.retryable is True


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = parse_settings({"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    provider = OpenAIProvider(settings)
    try:
        with pytest.raises(UpstreamError) as info:
            await provider.send(make_call({}), CREDENTIAL)
        assert info.value.retryable is True
        assert info.value.code == "upstream_unavailable"
    finally:
        await provider.aclose()


async def test_malformed_json_body(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.raw(200, b"<html>oops</html>"), Reply.raw(200, b'{"choices": []}'))
    for _ in range(2):
        with pytest.raises(UpstreamError) as info:
            await send_json(provider, {})
        assert info.value.code == "upstream_bad_response"


async def test_json_body_cut_midway(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.enqueue(Reply.text("a long answer", cut_after=1))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, {})
    assert info.value.retryable is True


# -- credentials and registration ----------------------------------------------------------------


async def test_gateway_credential_from_settings(fake: FakeOpenAI) -> None:
    with_key = OpenAIProvider(parse_settings({"OPENAI_API_KEY": KEY}))
    without = OpenAIProvider(parse_settings({}))
    try:
        credential = with_key.gateway_credential()
        assert credential is not None and credential.api_key == KEY and credential.source == "gateway"
        assert KEY not in repr(credential)
        assert without.gateway_credential() is None
        with pytest.raises(InvalidRequestError) as info:
            await without.send(make_call({}), None)
        assert info.value.code == "provider_not_configured" and "openai" in info.value.message
    finally:
        await with_key.aclose()
        await without.aclose()


def test_registration() -> None:
    registry = ProviderRegistry()
    openai_module.omnigate_register_providers(registry, parse_settings({}))
    (spec,) = registry.specs()
    assert spec.name == "openai"
    assert spec.model_prefixes == ("gpt-", "chatgpt-", "o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "o9")
