"""FakeAnthropic checked with the official anthropic SDK (AsyncAnthropic)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolParam

from omnigate.testing.fakes import DEFAULT_INPUT_OVERHEAD, FakeAnthropic, Reply, ToolCall, Usage

MESSAGES: list[MessageParam] = [{"role": "user", "content": "Tell me a story"}]
TOOLS: list[ToolParam] = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
]


@pytest.fixture
async def client(anthropic_fake: FakeAnthropic) -> AsyncIterator[AsyncAnthropic]:
    sdk = AsyncAnthropic(api_key="ak-test", base_url=anthropic_fake.base_url, max_retries=0)
    yield sdk
    await sdk.close()


async def test_default_echo_json(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    message = await client.messages.create(
        model="claude-test",
        max_tokens=100,
        system="Be nice.",
        messages=MESSAGES,
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "echo: Tell me a story"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == DEFAULT_INPUT_OVERHEAD + 2 + 4
    assert message.usage.output_tokens == 5
    (record,) = anthropic_fake.requests
    # anthropic SDK 2.x sends the key as a bearer token (1.x and the docs use x-api-key).
    assert "ak-test" in (record.headers.get("x-api-key"), record.headers.get("authorization", "")[7:])
    assert record.headers["anthropic-version"]


async def test_usage_and_stop_reasons(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.enqueue(
        Reply.text(
            "cut short",
            finish_reason="length",
            usage=Usage(input=100, output=7, cache_read=60, cache_write=30),
        ),
        Reply.text("done", stop_sequence="###"),
    )
    first = await client.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    assert first.stop_reason == "max_tokens"
    assert (first.usage.input_tokens, first.usage.cache_read_input_tokens) == (10, 60)
    assert (first.usage.cache_creation_input_tokens, first.usage.output_tokens) == (30, 7)
    second = await client.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    assert (second.stop_reason, second.stop_sequence) == ("stop_sequence", "###")


async def test_stream_text(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    text = "Once upon a time there was a fake server."
    anthropic_fake.enqueue(Reply.text(text, usage=Usage(input=20, output=9, cache_read=5)))
    async with client.messages.stream(model="c", max_tokens=100, messages=MESSAGES) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == text and len(pieces) == 9
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        15,
        9,
        5,
    )


async def test_tool_use_json(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.enqueue(
        Reply.tool_calls(
            [
                ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
                ToolCall.of("toolu_2", "get_weather", {"city": "Oslo"}),
            ],
            text="Let me check.",
        )
    )
    message = await client.messages.create(model="c", max_tokens=100, messages=MESSAGES, tools=TOOLS)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(b.id, b.name, b.input) for b in uses] == [
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_weather", {"city": "Oslo"}),
    ]


async def test_tool_use_stream_final_message(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    calls = [
        ToolCall("toolu_1", "get_weather", '{"city": "Paris", "days": 3}'),
        ToolCall("toolu_2", "noop", "{}"),
    ]
    anthropic_fake.enqueue(Reply.tool_calls(calls))
    async with client.messages.stream(model="c", max_tokens=100, messages=MESSAGES, tools=TOOLS) as stream:
        partials = [e.partial_json async for e in stream if e.type == "input_json"]
        final = await stream.get_final_message()
    assert len(partials) > 3
    assert final.stop_reason == "tool_use"
    assert [(b.id, b.input) for b in final.content if b.type == "tool_use"] == [
        ("toolu_1", {"city": "Paris", "days": 3}),
        ("toolu_2", {}),
    ]


@pytest.mark.parametrize(
    ("status", "exc_type", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (413, anthropic.RequestTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_errors_map_to_sdk_exceptions(
    client: AsyncAnthropic,
    anthropic_fake: FakeAnthropic,
    status: int,
    exc_type: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    anthropic_fake.enqueue(Reply.error(status, "scripted", retry_after=3))
    with pytest.raises(exc_type) as info:
        await client.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": error_type, "message": "scripted"}
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.request_id is not None


async def test_cut_stream_raises(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.enqueue(Reply.text("a b c d e f g", cut_after=4))
    # The SDK lets the transport error through while iterating (httpx2 is its HTTP client).
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        async with client.messages.stream(model="c", max_tokens=10, messages=MESSAGES) as stream:
            async for _ in stream:
                pass
    assert anthropic_fake.requests[0].cut


async def test_mid_stream_error_event(client: AsyncAnthropic, anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.enqueue(Reply.text("a b c", error_after=3))
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(model="c", max_tokens=10, messages=MESSAGES) as stream:
            async for _ in stream:
                pass
    assert isinstance(info.value.body, dict) and info.value.body["error"]["type"] == "overloaded_error"


async def test_required_headers_and_fields(anthropic_fake: FakeAnthropic) -> None:
    url = f"{anthropic_fake.base_url}/v1/messages"
    body = {"model": "c", "messages": MESSAGES}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, json={**body, "max_tokens": 5}, headers={"anthropic-version": "2023-06-01"}
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"] == {
                "type": "authentication_error",
                "message": "x-api-key header is required",
            }
        async with session.post(url, json={**body, "max_tokens": 5}, headers={"x-api-key": "k"}) as r:
            assert r.status == 400
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        async with session.post(url, json=body, headers=headers) as r:
            assert r.status == 400
            doc = await r.json()
            assert doc["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
            assert r.headers["request-id"].startswith("req_")
    assert anthropic_fake.pending == 0 and len(anthropic_fake.requests) == 3
