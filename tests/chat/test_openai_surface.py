"""The OpenAI-compatible surface, driven by the official openai SDK, for every provider."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from omnigate.testing import Reply, ToolCall, Usage
from tests.chat.conftest import GATEWAY_KEYS, MODELS, Fakes, Gateway, user

PROVIDERS = list(MODELS)


def sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    http_client = httpx.AsyncClient(transport=gateway.client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(
        api_key=gateway.tenant.key, base_url="http://testserver/v1", http_client=http_client, max_retries=0
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_plain_chat(gateway: Gateway, fakes: Fakes, provider: str) -> None:
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text("Hello there", usage=Usage(input=20, output=3)))
    completion = await sdk(gateway).chat.completions.create(
        model=MODELS[provider],
        messages=[{"role": "system", "content": "Be brief."}, user("Hi")],
        temperature=0.5,
    )
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 3)  # type: ignore[union-attr]
    sent = fake.requests[-1]
    assert GATEWAY_KEYS[provider] in json.dumps(sent.headers) or provider == "azure"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_streaming_with_usage(gateway: Gateway, fakes: Fakes, provider: str) -> None:
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text("one two three four", usage=Usage(input=11, output=4)))
    stream = await sdk(gateway).chat.completions.create(
        model=MODELS[provider], messages=[user("count")], stream=True, stream_options={"include_usage": True}
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == "one two three four" and finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (11, 4)


async def test_upstream_is_always_asked_for_stream_usage(gateway: Gateway, fakes: Fakes) -> None:
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[user("x")], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks), "the client did not ask for usage"
    assert fakes.openai.requests[-1].json["stream_options"]["include_usage"] is True
    rows = await gateway.usage_rows()
    assert rows[-1]["input_tokens"] > 0 and rows[-1]["output_tokens"] > 0


async def test_openai_answers_reach_openai_clients_as_the_upstream_sent_them(
    gateway: Gateway, fakes: Fakes
) -> None:
    for _ in range(2):
        fakes.openai.enqueue(Reply.text("Hi", usage=Usage(input=5, output=1)))
    completion = await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=[user("x")])
    assert (completion.system_fingerprint, completion.service_tier) == ("fp_fake", "default")
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.audio_tokens == 0, "the upstream's own usage details"
    assert completion.choices[0].message.content == "Hi" and completion.id.startswith("chatcmpl-fake")
    native = await gateway.chat({"model": "gpt-4o-mini", "messages": [user("x")]}, path="/v1/chat")
    assert native.json()["message"]["content"] == "Hi" and "system_fingerprint" not in native.json()
    rows = await gateway.usage_rows()
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows[-2:]] == [(5, 1), (5, 1)]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_openai_streams_reach_openai_clients_as_the_upstream_sent_them(
    gateway: Gateway, fakes: Fakes, include_usage: bool
) -> None:
    fakes.openai.enqueue(Reply.text(["Hel", "lo"], usage=Usage(input=6, output=2)))
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[user("x")],
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = [chunk async for chunk in stream]
    content = [chunk for chunk in chunks if chunk.choices]
    # Fields the unified model does not know (fingerprint, tier, obfuscation) are the upstream's own.
    assert {(c.system_fingerprint, c.service_tier) for c in content} == {("fp_fake", "default")}
    assert all(c.obfuscation for c in content)
    assert [c.choices[0].delta.role for c in content][:1] == ["assistant"], "the upstream's opening, once"
    assert "".join(c.choices[0].delta.content or "" for c in content) == "Hello"
    assert [c.choices[0].finish_reason for c in content if c.choices[0].finish_reason] == ["stop"]
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-fake")
    usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == ([(6, 2)] if include_usage else [])
    rows = await gateway.usage_rows()
    assert (rows[-1]["input_tokens"], rows[-1]["output_tokens"], rows[-1]["status"]) == (6, 2, "ok")


WEATHER_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_tool_calls_and_results(
    gateway: Gateway, fakes: Fakes, provider: str, stream: bool
) -> None:
    fake = fakes.for_provider(provider)
    fake.enqueue(
        Reply.tool_calls(
            [
                ToolCall.of("call_a", "get_weather", {"city": "Paris"}),
                ToolCall.of("call_b", "get_weather", {"city": "Oslo"}),
            ]
        )
    )
    client = sdk(gateway)
    request: dict[str, Any] = {
        "model": MODELS[provider],
        "messages": [user("Weather in Paris and Oslo?")],
        "tools": WEATHER_TOOLS,
    }
    if stream:
        calls: dict[int, dict[str, str]] = {}
        async for chunk in await client.chat.completions.create(**request, stream=True):
            for choice in chunk.choices:
                for piece in choice.delta.tool_calls or []:
                    slot = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = piece.id or slot["id"]
                    slot["name"] = (piece.function.name if piece.function else None) or slot["name"]
                    slot["arguments"] += (piece.function.arguments if piece.function else None) or ""
        got = [calls[index] for index in sorted(calls)]
    else:
        completion = await client.chat.completions.create(**request)
        assert completion.choices[0].finish_reason == "tool_calls"
        got = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}  # type: ignore[union-attr]
            for c in completion.choices[0].message.tool_calls or []
        ]
    assert [json.loads(c["arguments"]) for c in got] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert all(c["name"] == "get_weather" and c["id"] for c in got)

    # Feed the results back: the provider receives the whole exchange in its own format.
    history = [
        user("Weather in Paris and Oslo?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in got
            ],
        },
        *(
            {"role": "tool", "tool_call_id": c["id"], "content": f'{{"temp_c": {i}}}'}
            for i, c in enumerate(got)
        ),
    ]
    fake.enqueue(Reply.text("Paris 0, Oslo 1"))
    final = await client.chat.completions.create(
        model=MODELS[provider], messages=history, tools=WEATHER_TOOLS
    )
    assert final.choices[0].message.content == "Paris 0, Oslo 1"
    assert "temp_c" in json.dumps(fake.requests[-1].json)


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
async def test_upstream_errors_map_to_sdk_exceptions(
    gateway: Gateway, fakes: Fakes, status: int, exception: type[Exception]
) -> None:
    fakes.anthropic.enqueue(Reply.error(status, "upstream says no", retry_after=1))
    with pytest.raises(exception) as caught:
        await sdk(gateway).chat.completions.create(model="claude-sonnet-4-5", messages=[user("x")])
    if status == 400:
        assert "upstream says no" in str(caught.value)
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]


async def test_upstream_auth_failure_hides_the_upstream_text_and_key(gateway: Gateway, fakes: Fakes) -> None:
    fakes.openai.enqueue(Reply.error(401, f"Incorrect API key provided: {GATEWAY_KEYS['openai']}"))
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=[user("x")])
    assert GATEWAY_KEYS["openai"] not in str(caught.value.body) and "upstream_authentication_failed" in str(
        caught.value.body
    )


async def test_unknown_model_is_400_model_not_found(gateway: Gateway, fakes: Fakes) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(gateway).chat.completions.create(model="llama-3-70b", messages=[user("x")])
    assert caught.value.code == "model_not_found" and "routed" in caught.value.message
    assert fakes.total_requests() == 0


async def test_explicit_provider_prefix_selects_the_provider(gateway: Gateway, fakes: Fakes) -> None:
    fakes.anthropic.enqueue(Reply.text("via prefix"))
    completion = await sdk(gateway).chat.completions.create(
        model="anthropic/claude-sonnet-4-5", messages=[user("x")]
    )
    assert completion.choices[0].message.content == "via prefix"
    assert fakes.anthropic.requests[-1].json["model"] == "claude-sonnet-4-5"


async def test_image_inputs_reach_the_provider(gateway: Gateway, fakes: Fakes) -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": png}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    await sdk(gateway).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": content}]
    )
    blocks = fakes.anthropic.requests[-1].json["messages"][0]["content"]
    sources = [block["source"] for block in blocks if block["type"] == "image"]
    assert sources[0]["type"] == "base64" and sources[0]["media_type"] == "image/png"
    assert sources[1] == {"type": "url", "url": "https://example.com/cat.jpg"}
