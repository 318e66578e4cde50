"""FakeOpenAI checked with the official openai SDK (AsyncOpenAI)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from omnigate.testing.fakes import DEFAULT_INPUT_OVERHEAD, FakeOpenAI, Reply, ToolCall, Usage

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello to the world"},
]
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALLS = [
    ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ToolCall("call_2", "get_weather", '{"city": "Tokyo", "unit": "celsius"}'),
]


@pytest.fixture
async def client(openai_fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(api_key="sk-test", base_url=openai_fake.base_url, max_retries=0)
    yield sdk
    await sdk.close()


async def test_base_url_ends_in_v1(openai_fake: FakeOpenAI) -> None:
    assert openai_fake.base_url == openai_fake.origin + "/v1"


async def test_default_echo_reply_and_usage_formula(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "echo: Say hello to the world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == DEFAULT_INPUT_OVERHEAD + 2 + 5
    assert completion.usage.completion_tokens == 6
    assert completion._request_id is not None
    (record,) = openai_fake.requests
    assert record.path == "/v1/chat/completions"
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.json["messages"] == MESSAGES
    assert record.completed and record.usage == Usage(input=17, output=6)


async def test_text_json_with_detailed_usage(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    usage = Usage(input=100, output=40, cache_read=60, reasoning=30)
    openai_fake.enqueue(Reply.text("Hello there", usage=usage, finish_reason="length"))
    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "length"
    u = completion.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (100, 40, 140)
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 60
    assert u.completion_tokens_details is not None and u.completion_tokens_details.reasoning_tokens == 30


async def test_streaming_text_with_usage(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    openai_fake.enqueue(Reply.text(text, usage=Usage(input=12, output=9)))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finishes = [], None, []
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
    assert "".join(pieces) == text
    assert len([p for p in pieces if p]) == 9
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (12, 9)


async def test_streaming_without_include_usage_has_no_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


async def test_parallel_tool_calls_json(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    openai_fake.enqueue(Reply.tool_calls(CALLS))
    completion = await client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in calls if c.type == "function"
    ] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {"city": "Tokyo", "unit": "celsius"}),
    ]


async def test_parallel_tool_calls_streamed_with_sdk_accumulation(
    client: AsyncOpenAI, openai_fake: FakeOpenAI
) -> None:
    openai_fake.enqueue(Reply.tool_calls(CALLS, text="Checking both."))
    async with client.chat.completions.stream(
        model="m",
        messages=MESSAGES,
        tools=TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        fragments: dict[int, list[str]] = {}
        async for event in stream:
            if event.type == "chunk":
                for choice in event.chunk.choices:
                    for tc in choice.delta.tool_calls or []:
                        if tc.function and tc.function.arguments:
                            fragments.setdefault(tc.index, []).append(tc.function.arguments)
        final = await stream.get_final_completion()
    assert all(len(f) > 1 for f in fragments.values())
    message = final.choices[0].message
    assert message.content == "Checking both."
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    args = [json.loads(tc.function.arguments) for tc in message.tool_calls]
    assert args == [{"city": "Paris"}, {"city": "Tokyo", "unit": "celsius"}]
    assert [tc.id for tc in message.tool_calls] == ["call_1", "call_2"]
    assert final.usage is not None and final.usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_errors_map_to_sdk_exceptions(
    client: AsyncOpenAI, openai_fake: FakeOpenAI, status: int, exc_type: type[openai.APIStatusError]
) -> None:
    openai_fake.enqueue(Reply.error(status, "scripted failure", retry_after=2, retry_after_ms=1500))
    with pytest.raises(exc_type) as info:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.message.endswith("scripted failure") or "scripted failure" in info.value.message
    assert isinstance(info.value.body, dict) and info.value.body["message"] == "scripted failure"
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "1500"


async def test_rate_limit_error_fields(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    openai_fake.enqueue(Reply.error(429, "slow down", error_type="tokens"))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.type == "tokens"


async def test_wrong_key_is_401(openai_fake: FakeOpenAI) -> None:
    openai_fake.api_key = "sk-right"
    sdk = AsyncOpenAI(api_key="sk-wrong", base_url=openai_fake.base_url, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(model="m", messages=MESSAGES)
    finally:
        await sdk.close()
    assert info.value.code == "invalid_api_key"
    assert openai_fake.pending == 0 and len(openai_fake.requests) == 1


async def test_cut_stream_is_an_error_not_a_clean_end(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    openai_fake.enqueue(Reply.text("one two three four five six", cut_after=3))
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "one two "
    assert openai_fake.requests[0].cut and openai_fake.requests[0].events_sent == 3
    assert openai_fake.disconnects == 0


async def test_cut_json_body_is_a_connection_error(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    openai_fake.enqueue(Reply.text("never whole", cut_after=0))
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=MESSAGES)
    assert openai_fake.requests[0].cut and openai_fake.requests[0].usage is None


async def test_mid_stream_error_event_raises_api_error(client: AsyncOpenAI, openai_fake: FakeOpenAI) -> None:
    openai_fake.enqueue(Reply.text("a b c d", error_after=2, message="upstream exploded"))
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="upstream exploded"):
        async for _ in stream:
            pass


async def test_models_list_and_card(client: AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1"]
    card = await client.models.retrieve("gpt-4o")
    assert card.id == "gpt-4o" and card.object == "model"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-9")
