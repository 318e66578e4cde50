"""FakeGemini checked with the official google-genai SDK (client.aio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from omnigate.testing.fakes import DEFAULT_INPUT_OVERHEAD, FakeGemini, Reply, ToolCall, Usage

# google-genai subclasses aiohttp.ClientSession, which aiohttp 3.14 warns about (error under our filters).
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

PROMPT = "What is the capital of Poland"
TOOLS: list[types.Tool | Callable[..., Any]] = [
    types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
            )
        ]
    )
]


@pytest.fixture
async def client(gemini_fake: FakeGemini) -> AsyncIterator[genai.Client]:
    options = types.HttpOptions(base_url=gemini_fake.base_url, api_version="v1beta")
    sdk = genai.Client(api_key="g-key", http_options=options)
    yield sdk
    await sdk.aio.aclose()


async def test_default_echo_json(client: genai.Client, gemini_fake: FakeGemini) -> None:
    response = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents=PROMPT,
        config=types.GenerateContentConfig(system_instruction="Answer briefly."),
    )
    assert response.text == f"echo: {PROMPT}"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == DEFAULT_INPUT_OVERHEAD + 2 + 6
    assert usage.candidates_token_count == 7
    assert usage.total_token_count == usage.prompt_token_count + 7
    assert response.model_version == "gemini-2.5-flash"
    (record,) = gemini_fake.requests
    assert record.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert record.headers["x-goog-api-key"] == "g-key"


async def test_sdk_default_api_version_also_served(gemini_fake: FakeGemini) -> None:
    sdk = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gemini_fake.base_url))
    try:
        response = await sdk.aio.models.generate_content(model="gemini-x", contents="hi")
    finally:
        await sdk.aio.aclose()
    assert response.text == "echo: hi"
    assert gemini_fake.requests[0].path.endswith("/models/gemini-x:generateContent")


async def test_usage_details_and_finish(client: genai.Client, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(
        Reply.text(
            "Warsaw", finish_reason="length", usage=Usage(input=30, output=50, cache_read=20, reasoning=40)
        )
    )
    response = await client.aio.models.generate_content(model="gemini-2.5-pro", contents=PROMPT)
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    u = response.usage_metadata
    assert u is not None
    assert (u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count) == (30, 10, 40)
    assert (u.cached_content_token_count, u.total_token_count) == (20, 80)


async def test_stream_text_cumulative_usage(client: genai.Client, gemini_fake: FakeGemini) -> None:
    text = "The capital of Poland is Warsaw, on the Vistula."
    gemini_fake.enqueue(Reply.text(text, usage=Usage(input=11, output=9)))
    chunks = [c async for c in await client.aio.models.generate_content_stream(model="g", contents=PROMPT)]
    assert "".join(c.text or "" for c in chunks) == text
    assert len(chunks) == 9
    counts = [c.usage_metadata.candidates_token_count or 0 for c in chunks if c.usage_metadata]
    assert counts == sorted(counts) and counts[-1] == 9
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count == 20
    assert [c.candidates[0].finish_reason for c in chunks if c.candidates][-1] == types.FinishReason.STOP
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert gemini_fake.requests[0].query == {"alt": "sse"}


async def test_function_calls_json_and_stream(client: genai.Client, gemini_fake: FakeGemini) -> None:
    calls = [
        ToolCall("c1", "get_weather", '{"city": "Paris"}'),
        ToolCall("c2", "get_weather", '{"city": "Rome"}'),
    ]
    gemini_fake.enqueue(Reply.tool_calls(calls), Reply.tool_calls(calls, text="Checking."))
    config = types.GenerateContentConfig(tools=TOOLS)
    response = await client.aio.models.generate_content(model="g", contents=PROMPT, config=config)
    assert [(f.name, f.args) for f in response.function_calls or []] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    stream = await client.aio.models.generate_content_stream(model="g", contents=PROMPT, config=config)
    chunks = [c async for c in stream]
    found = [(f.name, f.args) for c in chunks for f in c.function_calls or []]
    assert found == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert chunks[0].text == "Checking."


@pytest.mark.parametrize(
    ("status", "exc_type", "grpc_status"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
async def test_errors_map_to_sdk_exceptions(
    client: genai.Client,
    gemini_fake: FakeGemini,
    status: int,
    exc_type: type[errors.APIError],
    grpc_status: str,
) -> None:
    gemini_fake.enqueue(Reply.error(status, "scripted", retry_after=37))
    with pytest.raises(exc_type) as info:
        await client.aio.models.generate_content(model="g", contents=PROMPT)
    assert (info.value.code, info.value.status, info.value.message) == (status, grpc_status, "scripted")
    details = info.value.details["error"]["details"]
    assert details == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]


async def test_error_before_stream(client: genai.Client, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(Reply.error(429, "quota"))
    with pytest.raises(errors.ClientError) as info:
        async for _ in await client.aio.models.generate_content_stream(model="g", contents=PROMPT):
            pass
    assert info.value.code == 429


async def test_cut_stream_raises(client: genai.Client, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(Reply.text("a b c d e f", cut_after=2))
    received: list[str] = []
    # google-genai uses aiohttp for its async client when aiohttp is installed.
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in await client.aio.models.generate_content_stream(model="g", contents=PROMPT):
            received.append(chunk.text or "")
    assert received == ["a ", "b "]


async def test_mid_stream_error_raises(client: genai.Client, gemini_fake: FakeGemini) -> None:
    gemini_fake.enqueue(Reply.text("a b c", error_after=1, message="boom"))
    with pytest.raises(errors.APIError, match="boom"):
        async for _ in await client.aio.models.generate_content_stream(model="g", contents=PROMPT):
            pass


async def test_auth_checks(gemini_fake: FakeGemini) -> None:
    gemini_fake.api_key = "right"
    url = f"{gemini_fake.base_url}/v1beta/models/g:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as r:
            assert r.status == 403
            assert (await r.json())["error"]["status"] == "PERMISSION_DENIED"
        async with session.post(url + "?key=wrong", json=body) as r:
            assert r.status == 400
            doc = await r.json()
            assert doc["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        async with session.post(url + "?key=right", json=body) as r:
            assert r.status == 200
            assert (await r.json())["candidates"][0]["content"]["parts"] == [{"text": "echo: hi"}]
