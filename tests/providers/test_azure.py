"""The Azure OpenAI provider against FakeAzureOpenAI (deployments, api-version, content filters)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from omnigate.chat.models import ChatResult, ChatStream, Credential, StreamChunk, Target, Usage
from omnigate.chat.validate import parse_chat_request
from omnigate.errors import InvalidRequestError, UpstreamError
from omnigate.plugin.interfaces import Call
from omnigate.plugin.registry import ProviderRegistry
from omnigate.providers import azure as azure_module
from omnigate.providers.azure import AzureOpenAIProvider
from omnigate.settings import parse_settings
from omnigate.testing.fakes import FakeAzureOpenAI, Reply, ToolCall
from omnigate.testing.fakes import Usage as FakeUsage

KEY = "azure-key-0123456789abcdef"
VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "hello azure"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAzureOpenAI]:
    deployments = {"chat": "gpt-4o-2024-11-20", "mini": "gpt-4o-mini-2024-07-18"}
    async with FakeAzureOpenAI(api_key=KEY, deployments=deployments, api_versions=[VERSION]) as server:
        yield server


def settings_for(fake: FakeAzureOpenAI | None, **extra: str) -> Any:
    values = {"AZURE_OPENAI_API_VERSION": VERSION, **extra}
    if fake is not None:
        values |= {"AZURE_OPENAI_ENDPOINT": fake.base_url, "AZURE_OPENAI_API_KEY": KEY}
    return parse_settings(values)


@pytest.fixture
async def provider(fake: FakeAzureOpenAI) -> AsyncIterator[AzureOpenAIProvider]:
    instance = AzureOpenAIProvider(settings_for(fake))
    yield instance
    await instance.aclose()


@pytest.fixture
def credential(provider: AzureOpenAIProvider) -> Credential:
    found = provider.gateway_credential()
    assert found is not None
    return found


def make_call(body: dict[str, Any], deployment: str = "chat") -> Call:
    request = parse_chat_request({"model": f"azure/{deployment}", "messages": HELLO, **body})
    return Call(
        request_id="t",
        principal=None,
        request=request,
        target=Target("azure", deployment),
        deadline=time.monotonic() + 30,
    )


async def send_json(
    provider: AzureOpenAIProvider, credential: Credential, body: dict[str, Any], deployment: str = "chat"
) -> ChatResult:
    result = await provider.send(make_call(body, deployment), credential)
    assert isinstance(result, ChatResult)
    return result


async def stream_chunks(
    provider: AzureOpenAIProvider, credential: Credential, body: dict[str, Any]
) -> list[StreamChunk]:
    stream = await provider.send(make_call({**body, "stream": True}), credential)
    assert isinstance(stream, ChatStream)
    try:
        return [chunk async for chunk in stream]
    finally:
        await stream.aclose()


async def test_text_json_on_deployment_url(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    fake.enqueue(Reply.text("Hi from Azure", usage=FakeUsage(9, 3, cache_read=4)))
    body = {"temperature": 0.3, "seed": 7, "fallback_models": ["gpt-4o"], "metadata": {"a": "b"}}
    result = await send_json(provider, credential, body)
    assert result.content == "Hi from Azure"
    assert result.model == "gpt-4o-2024-11-20"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=9, output_tokens=3, cache_read_tokens=4)
    record = fake.requests[-1]
    assert record.path == "/openai/deployments/chat/chat/completions"
    assert record.query == {"api-version": VERSION}
    assert record.headers["api-key"] == KEY
    assert "authorization" not in record.headers
    assert record.json == {"messages": HELLO, "temperature": 0.3, "seed": 7}


async def test_stream_skips_prelude_and_reports_usage(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    fake.enqueue(Reply.text(["Hello", " Azure"], usage=FakeUsage(5, 2), chunk_delay_s=0.1))
    stream = await provider.send(make_call({"stream": True}), credential)
    assert isinstance(stream, ChatStream)
    first = await stream.__aiter__().__anext__()
    assert not fake.requests[-1].completed
    assert stream.model == "gpt-4o-2024-11-20" and stream.id.startswith("chatcmpl-")
    rest = [chunk async for chunk in stream]
    await stream.aclose()
    chunks = [first, *rest]
    assert all(c.text or c.tool_calls or c.finish_reason or c.usage for c in chunks)
    assert "".join(c.text or "" for c in chunks) == "Hello Azure"
    assert [c.usage for c in chunks if c.usage] == [Usage(input_tokens=5, output_tokens=2)]
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    assert "model" not in fake.requests[-1].json


async def test_streamed_tool_calls(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    calls = [ToolCall.of("call_1", "lookup", {"q": "a"}), ToolCall.of("call_2", "lookup", {"q": "b"})]
    fake.enqueue(Reply.tool_calls(calls))
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    chunks = await stream_chunks(provider, credential, {"tools": [tool], "tool_choice": "required"})
    assembled: dict[int, list[str]] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            entry = assembled.setdefault(delta.index, [delta.id or "", delta.name or "", ""])
            entry[2] += delta.arguments
    assert assembled == {0: ["call_1", "lookup", '{"q": "a"}'], 1: ["call_2", "lookup", '{"q": "b"}']}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_content_filter_finish(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    fake.enqueue(
        Reply.text("partial", finish_reason="content_filter"),
        Reply.text("partial", finish_reason="content_filter"),
    )
    assert (await send_json(provider, credential, {})).finish_reason == "content_filter"
    chunks = await stream_chunks(provider, credential, {})
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]


async def test_unknown_deployment(provider: AzureOpenAIProvider, credential: Credential) -> None:
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, credential, {}, deployment="nope")
    assert info.value.upstream_status == 404 and info.value.status_code == 404
    assert "deployment" in info.value.message.lower()
    assert info.value.retryable is False


async def test_deployment_name_is_path_quoted(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, credential, {}, deployment="a/../../x")
    assert "API deployment for this resource does not exist" in info.value.message  # one path segment
    assert fake.requests[-1].path.startswith("/openai/deployments/a")
    assert fake.requests[-1].path.endswith("/chat/completions")


async def test_byok_meta_endpoint_deployment_and_version(fake: FakeAzureOpenAI) -> None:
    provider = AzureOpenAIProvider(settings_for(None, ALLOW_PRIVATE_UPSTREAMS="true"))
    meta = {"endpoint": fake.base_url + "/", "deployment": "mini", "api_version": VERSION}
    byok = Credential(api_key=KEY, meta=meta, source="project")
    try:
        assert provider.gateway_credential() is None
        result = await send_json(provider, byok, {}, deployment="")
        assert result.model == "gpt-4o-mini-2024-07-18"
        assert fake.requests[-1].path == "/openai/deployments/mini/chat/completions"
        await send_json(provider, byok, {}, deployment="chat")
        assert fake.requests[-1].path == "/openai/deployments/chat/chat/completions"
        old = Credential(api_key=KEY, meta={**meta, "api_version": "2023-05-15"}, source="project")
        with pytest.raises(UpstreamError) as info:
            await send_json(provider, old, {})
        assert info.value.upstream_status == 400
        assert fake.requests[-1].query == {"api-version": "2023-05-15"}
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://example.openai.azure.com",
        "https://127.0.0.1:8443",
        "https://localhost",
        "https://[::1]",
        "https://10.1.2.3",
        "https://169.254.169.254",
        "https://x.openai.azure.com/?a=b",
        "ftp://x",
    ],
)
async def test_tenant_endpoint_checked(endpoint: str) -> None:
    provider = AzureOpenAIProvider(settings_for(None))
    byok = Credential(api_key=KEY, meta={"endpoint": endpoint}, source="project")
    try:
        with pytest.raises(InvalidRequestError) as info:
            await provider.send(make_call({}), byok)
        assert "endpoint" in info.value.message and KEY not in info.value.message
    finally:
        await provider.aclose()


async def test_no_endpoint_is_not_configured() -> None:
    provider = AzureOpenAIProvider(parse_settings({"AZURE_OPENAI_API_KEY": KEY}))
    try:
        assert provider.gateway_credential() is None
        with pytest.raises(InvalidRequestError) as info:
            await provider.send(make_call({}), Credential(api_key=KEY, source="project"))
        assert info.value.code == "provider_not_configured"
        assert "azure" in info.value.message
        with pytest.raises(InvalidRequestError):
            await provider.send(make_call({}), None)
    finally:
        await provider.aclose()


async def test_missing_deployment_is_not_configured(
    provider: AzureOpenAIProvider, credential: Credential
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.send(make_call({}, deployment=""), credential)
    assert info.value.code == "provider_not_configured"


async def test_gateway_credential(provider: AzureOpenAIProvider, fake: FakeAzureOpenAI) -> None:
    credential = provider.gateway_credential()
    assert credential is not None
    assert credential.source == "gateway" and credential.api_key == KEY
    assert credential.meta == {"endpoint": fake.base_url, "api_version": VERSION}


async def test_errors(provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI) -> None:
    fake.enqueue(Reply.error(429, "Requests have exceeded the limit", code="429", retry_after_ms=1500))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, credential, {})
    assert info.value.retryable is True and info.value.retry_after_s == 1.5
    wrong = Credential(api_key="wrong-key-zzzzzzzzzzzz", meta=credential.meta, source="gateway")
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, wrong, {})
    assert info.value.code == "upstream_authentication_failed"
    assert "Access denied" not in info.value.message and "wrong-key" not in str(info.value)
    fake.enqueue(Reply.error(500, "Internal error"))
    with pytest.raises(UpstreamError) as info:
        await send_json(provider, credential, {})
    assert info.value.retryable is True


async def test_stream_error_event(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    fake.enqueue(Reply.text("a b c", error_after=2, message="model overloaded"))
    with pytest.raises(UpstreamError) as info:
        await stream_chunks(provider, credential, {})
    assert info.value.code == "upstream_stream_error" and "model overloaded" in info.value.message


async def test_closing_stream_early_disconnects(
    provider: AzureOpenAIProvider, credential: Credential, fake: FakeAzureOpenAI
) -> None:
    fake.enqueue(Reply.text("word " * 40, chunk_delay_s=0.05))
    stream = await provider.send(make_call({"stream": True}), credential)
    assert isinstance(stream, ChatStream)
    await stream.__aiter__().__anext__()
    await stream.aclose()
    await fake.wait_disconnected(timeout_s=3)


def test_registration_has_no_bare_prefixes() -> None:
    registry = ProviderRegistry()
    azure_module.omnigate_register_providers(registry, parse_settings({}))
    (spec,) = registry.specs()
    assert spec.name == "azure" and spec.model_prefixes == ()
