"""FakeAzureOpenAI checked with the official openai SDK (AsyncAzureOpenAI)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from openai import AsyncAzureOpenAI
from openai.types.chat import ChatCompletionMessageParam

from omnigate.testing.fakes import FakeAzureOpenAI, Reply, ToolCall, Usage

API_VERSION = "2024-10-21"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello azure"}]


@pytest.fixture
async def client(azure_fake: FakeAzureOpenAI) -> AsyncIterator[AsyncAzureOpenAI]:
    sdk = AsyncAzureOpenAI(
        api_key="azure-key",
        azure_endpoint=azure_fake.base_url,
        azure_deployment="chat",
        api_version=API_VERSION,
        max_retries=0,
    )
    yield sdk
    await sdk.close()


async def test_text_json(client: AsyncAzureOpenAI, azure_fake: FakeAzureOpenAI) -> None:
    completion = await client.chat.completions.create(model="ignored", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello azure"
    assert completion.model == "gpt-4o-2024-11-20"
    extra = completion.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    (record,) = azure_fake.requests
    assert record.path == "/openai/deployments/chat/chat/completions"
    assert record.query == {"api-version": API_VERSION}
    assert record.headers["api-key"] == "azure-key"


async def test_model_selects_deployment_without_azure_deployment(azure_fake: FakeAzureOpenAI) -> None:
    sdk = AsyncAzureOpenAI(
        api_key="k", azure_endpoint=azure_fake.base_url, api_version=API_VERSION, max_retries=0
    )
    try:
        completion = await sdk.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices[0].message.content == "echo: hello azure"
        with pytest.raises(openai.NotFoundError) as info:
            await sdk.chat.completions.create(model="nope", messages=MESSAGES)
        assert info.value.code == "DeploymentNotFound"
    finally:
        await sdk.close()


async def test_stream_with_prelude_chunk_and_usage(
    client: AsyncAzureOpenAI, azure_fake: FakeAzureOpenAI
) -> None:
    azure_fake.enqueue(Reply.text("alpha beta gamma", usage=Usage(input=5, output=3)))
    stream = await client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices == [] and chunks[0].id == ""
    assert (chunks[0].model_extra or {})["prompt_filter_results"]
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert text == "alpha beta gamma"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8


async def test_streamed_tool_calls(client: AsyncAzureOpenAI, azure_fake: FakeAzureOpenAI) -> None:
    azure_fake.enqueue(
        Reply.tool_calls([ToolCall("call_a", "lookup", '{"q": "x"}'), ToolCall("call_b", "lookup", "{}")])
    )
    async with client.chat.completions.stream(model="chat", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"q": "x"}, {}]


async def test_errors(client: AsyncAzureOpenAI, azure_fake: FakeAzureOpenAI) -> None:
    azure_fake.enqueue(
        Reply.error(429, "Requests have exceeded the rate limit.", retry_after=6, retry_after_ms=6000)
    )
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert info.value.code == "429"
    assert info.value.response.headers["retry-after-ms"] == "6000"
    azure_fake.api_key = "other"
    with pytest.raises(openai.AuthenticationError) as auth:
        await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert auth.value.code == "401"


async def test_content_filter_finish(client: AsyncAzureOpenAI, azure_fake: FakeAzureOpenAI) -> None:
    azure_fake.enqueue(Reply.text("partial", finish_reason="content_filter"))
    completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert (choice.model_extra or {})["content_filter_results"]["violence"]["filtered"] is True


async def test_missing_api_version_is_404(azure_fake: FakeAzureOpenAI) -> None:
    url = f"{azure_fake.base_url}/openai/deployments/chat/chat/completions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"messages": MESSAGES}, headers={"api-key": "k"}) as resp:
            assert resp.status == 404
            assert await resp.json() == {"error": {"code": "404", "message": "Resource not found"}}
        async with session.post(url + "?api-version=x", json={"messages": MESSAGES}) as resp:
            assert resp.status == 401


async def test_v1_api_with_plain_openai_client(azure_fake: FakeAzureOpenAI) -> None:
    sdk = openai.AsyncOpenAI(api_key="k", base_url=f"{azure_fake.base_url}/openai/v1", max_retries=0)
    try:
        completion = await sdk.chat.completions.create(model="chat", messages=MESSAGES)
    finally:
        await sdk.close()
    assert completion.model == "gpt-4o-2024-11-20"
