"""Response cache: opt-in, deterministic non-streaming requests only, per project, billed $0 on a hit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnigate.chat.models import Target
from omnigate.chat.validate import parse_chat_request
from omnigate.policies.response_cache_key import cache_key, is_deterministic
from omnigate.testing import Reply, ToolCall, Usage
from tests.chat.conftest import create_tenant, user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)

TARGET = Target("openai", "gpt-4o-mini")


def request(**fields: Any) -> Any:
    return parse_chat_request({"model": "gpt-4o-mini", "messages": [user("what is 2+2?")], **fields})


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [user("what is 2+2?")], "temperature": 0, **extra}


def test_deterministic_means_not_streamed_and_greedy_or_seeded() -> None:
    assert is_deterministic(request(temperature=0))
    assert is_deterministic(request(temperature=0.7, seed=42))
    assert not is_deterministic(request())  # the provider's default temperature samples
    assert not is_deterministic(request(temperature=0.2))
    assert not is_deterministic(request(temperature=0, stream=True))


def test_the_key_is_canonical_and_holds_the_project_and_everything_that_shapes_the_answer() -> None:
    base = cache_key("proj_a", TARGET, request(temperature=0, max_tokens=5))
    same = parse_chat_request(
        {
            "max_tokens": 5,
            "temperature": 0.0,
            "messages": [user("what is 2+2?")],
            "model": "openai/gpt-4o-mini",
        }
    )
    assert cache_key("proj_a", TARGET, same) == base
    assert cache_key("proj_a", TARGET, request(temperature=0, max_tokens=5, cache=True)) == base
    assert base.startswith("rc:v1:proj_a:")
    different = [
        cache_key("proj_b", TARGET, request(temperature=0, max_tokens=5)),
        cache_key("proj_a", Target("azure", "gpt-4o-mini"), request(temperature=0, max_tokens=5)),
        cache_key("proj_a", TARGET, request(temperature=0, max_tokens=6)),
        cache_key(
            "proj_a", TARGET, request(temperature=0, max_tokens=5, response_format={"type": "json_object"})
        ),
        cache_key("proj_a", TARGET, request(temperature=0, max_tokens=5, logit_bias={"1": 5})),
        cache_key(
            "proj_a",
            TARGET,
            parse_chat_request({"model": "gpt-4o-mini", "messages": [user("what is 3+3?")], "max_tokens": 5}),
        ),
    ]
    assert base not in different and len(set(different)) == len(different)


async def test_the_same_request_twice_is_one_upstream_call_and_the_second_is_billed_zero(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.text("4", usage=Usage(input=1000, output=10)))
    first = await gateway.chat(body(cache=True), path="/v1/chat")
    second = await gateway.chat(body(cache=True), path="/v1/chat")
    assert fakes.openai.request_count == 1
    assert first.headers["x-omnigate-cache"] == "miss" and second.headers["x-omnigate-cache"] == "hit"
    assert (first.json()["cached"], second.json()["cached"]) == (False, True)
    assert second.json()["message"]["content"] == "4" and second.json()["cost_usd"] == 0
    assert first.json()["cost_usd"] > 0
    # The OpenAI surface reads the same entry.
    openai_hit = await gateway.chat(body(cache=True))
    assert openai_hit.headers["x-omnigate-cache"] == "hit" and fakes.openai.request_count == 1
    assert openai_hit.json()["choices"][0]["message"]["content"] == "4"
    rows = await gateway.usage_rows()
    assert sorted((r["status"], r["cost_micros"] == 0, r["cached"], r["attempts"]) for r in rows) == [
        ("cache_hit", True, True, 0),
        ("cache_hit", True, True, 0),
        ("ok", False, False, 1),
    ]


async def test_an_openai_answer_is_cached_as_sent_and_each_surface_reads_it_in_its_own_format(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway()
    fakes.openai.enqueue(Reply.text("4", usage=Usage(input=10, output=1)))
    fresh = await gateway.chat(body(cache=True))
    hit = await gateway.chat(body(cache=True))
    native_hit = await gateway.chat(body(cache=True), path="/v1/chat")
    assert fakes.openai.request_count == 1 and hit.headers["x-omnigate-cache"] == "hit"
    assert hit.content == fresh.content, "an OpenAI client gets the upstream's answer, also from the cache"
    assert fresh.json()["system_fingerprint"] == "fp_fake"
    assert native_hit.json()["cached"] is True and native_hit.json()["message"]["content"] == "4"
    assert "system_fingerprint" not in native_hit.json()


async def test_one_project_never_reads_another_projects_entry(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RESPONSE_CACHE_ENABLED="true")
    other = await create_tenant(gateway.client, "project-b")
    fakes.openai.enqueue(Reply.text("answer for A"), Reply.text("answer for B"))
    first_a = await gateway.chat(body())
    first_b = await gateway.client.post("/v1/chat/completions", json=body(), headers=other.headers)
    assert first_b.headers["x-omnigate-cache"] == "miss" and fakes.openai.request_count == 2
    assert first_b.json()["choices"][0]["message"]["content"] == "answer for B"
    again_a = await gateway.chat(body())
    again_b = await gateway.client.post("/v1/chat/completions", json=body(), headers=other.headers)
    assert first_a.json()["choices"][0]["message"]["content"] == "answer for A"
    assert again_a.json()["choices"][0]["message"]["content"] == "answer for A"
    assert again_b.json()["choices"][0]["message"]["content"] == "answer for B"
    assert fakes.openai.request_count == 2


async def test_opt_in_opt_out_and_what_is_never_cached(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway()  # RESPONSE_CACHE_ENABLED defaults to false
    for _ in range(2):
        response = await gateway.chat(body())
        assert "x-omnigate-cache" not in response.headers
    assert fakes.openai.request_count == 2
    for _ in range(2):
        sampled = await gateway.chat(body(cache=True, temperature=0.8))
        assert sampled.headers["x-omnigate-cache"] == "bypass"
    assert fakes.openai.request_count == 4
    for _ in range(2):
        streamed = await gateway.chat(body(cache=True, stream=True))
        assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    assert fakes.openai.request_count == 6
    enabled = await make_gateway(RESPONSE_CACHE_ENABLED="true")
    for _ in range(2):
        opted_out = await enabled.chat(body(cache=False))
        assert "x-omnigate-cache" not in opted_out.headers
    assert fakes.openai.request_count == 8


async def test_errors_and_fallback_answers_are_not_cached(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1", RESPONSE_CACHE_ENABLED="true")
    fakes.openai.enqueue(Reply.error(400, "nope"), Reply.error(503, "down"), Reply.text("primary"))
    assert (await gateway.chat(body())).status_code == 400
    with_fallback = body(fallback_models=["claude-sonnet-4-5"])
    assert (await gateway.chat(with_fallback)).headers["x-omnigate-fallback-used"] == "true"
    primary = await gateway.chat(with_fallback)
    assert primary.headers["x-omnigate-cache"] == "miss"
    assert primary.json()["choices"][0]["message"]["content"] == "primary"
    assert (await gateway.chat(with_fallback)).headers["x-omnigate-cache"] == "hit"


async def test_tool_calls_round_trip_through_the_cache(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RESPONSE_CACHE_ENABLED="true")
    fakes.anthropic.enqueue(Reply.tool_calls([ToolCall.of("call_1", "add", {"a": 2, "b": 2})]))
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    request_body = {**body(tools=tools), "model": "claude-sonnet-4-5"}
    fresh = await gateway.chat(request_body, path="/v1/chat")
    cached = await gateway.chat(request_body, path="/v1/chat")
    assert cached.json()["cached"] is True and fakes.anthropic.request_count == 1
    assert cached.json()["message"] == fresh.json()["message"]
    assert cached.json()["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_entries_expire_after_the_ttl(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RESPONSE_CACHE_ENABLED="true", RESPONSE_CACHE_TTL_S="1")
    await gateway.chat(body())
    assert (await gateway.chat(body())).headers["x-omnigate-cache"] == "hit"
    await asyncio.sleep(1.2)
    assert (await gateway.chat(body())).headers["x-omnigate-cache"] == "miss"
    assert fakes.openai.request_count == 2


@pytest.mark.parametrize("backend", ["production"], indirect=True)
async def test_with_redis_another_gateway_process_serves_the_entry(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    first = await make_gateway(RESPONSE_CACHE_ENABLED="true")
    second = await make_gateway(tenant=first.tenant, RESPONSE_CACHE_ENABLED="true")
    await first.chat(body())
    assert (await second.chat(body())).headers["x-omnigate-cache"] == "hit"
    assert fakes.openai.request_count == 1
