"""Circuit breaker per provider:project: opens, isolates, probes and recovers, in process and across processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnigate.chat.models import ChatResult, Target
from omnigate.chat.validate import parse_chat_request
from omnigate.plugin.interfaces import Call
from omnigate.policies.circuit_breaker import CircuitBreakerPolicy
from omnigate.policies.circuit_breaker_store import CLOSED, HALF_OPEN, OPEN, BreakerStore
from omnigate.state import MemoryState, RedisState
from omnigate.testing import Reply
from tests.chat.conftest import create_tenant, user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory, policy

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)

BREAKER = {"RETRY_MAX_ATTEMPTS": "1", "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3"}
CHAT = {"model": "gpt-4o-mini", "messages": [user("x")]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store_on(
    state: Any, threshold: int = 2, half_open_max_calls: int = 1, exclusive: bool = False
) -> BreakerStore:
    return BreakerStore(
        state,
        failure_threshold=threshold,
        reset_timeout_s=30.0,
        half_open_max_calls=half_open_max_calls,
        probe_ttl_s=60.0,
        exclusive=exclusive,
    )


# exclusive=True: an in-process breaker that skips the state read for keys it saw healthy.
exclusive_or_shared = pytest.mark.parametrize("exclusive", [False, True], ids=["shared", "exclusive"])


@exclusive_or_shared
async def test_store_walks_closed_open_half_open_closed_on_a_fake_clock(exclusive: bool) -> None:
    clock = Clock()
    store = store_on(MemoryState(clock=clock), threshold=2, half_open_max_calls=2, exclusive=exclusive)
    first = await store.admit("p:a")
    assert first.state == CLOSED and first.allowed
    assert await store.record_failure(first) is None
    assert await store.record_failure(await store.admit("p:a")) == OPEN
    blocked = await store.admit("p:a")
    assert blocked.state == OPEN and not blocked.allowed and blocked.retry_after_s == 30.0
    clock.now += 30.5
    probes = [await store.admit("p:a") for _ in range(3)]
    assert [(p.state, p.allowed, p.probe) for p in probes] == [
        (HALF_OPEN, True, True),
        (HALF_OPEN, True, True),
        (HALF_OPEN, False, False),
    ]
    assert await store.record_success(probes[0]) == CLOSED
    for probe in probes:
        await store.release_probe(probe)
    assert (await store.admit("p:a")).state == CLOSED
    assert (await store.admit("p:b")).state == CLOSED  # keys are independent
    for _ in range(2):  # a key admitted healthy many times still counts its failures
        await store.record_failure(await store.admit("p:a"))
    assert (await store.admit("p:a")).state == OPEN


@exclusive_or_shared
async def test_a_failed_probe_opens_again_and_a_success_resets_the_count(exclusive: bool) -> None:
    clock = Clock()
    store = store_on(MemoryState(clock=clock), threshold=3, exclusive=exclusive)
    for _ in range(2):
        await store.record_failure(await store.admit("k"))
    await store.record_success(await store.admit("k"))
    await store.record_failure(await store.admit("k"))
    assert (await store.admit("k")).state == CLOSED  # 2 + success + 1 is not 3 consecutive
    for _ in range(2):
        await store.record_failure(await store.admit("k"))
    assert (await store.admit("k")).state == OPEN
    clock.now += 31
    probe = await store.admit("k")
    assert probe.probe and await store.record_failure(probe) == OPEN
    await store.release_probe(probe)
    assert (await store.admit("k")).state == OPEN


async def test_a_success_admitted_before_failures_landed_still_resets_an_exclusive_count() -> None:
    store = store_on(MemoryState(clock=Clock()), threshold=3, exclusive=True)
    in_flight = [await store.admit("k") for _ in range(6)]  # all admitted while the key was healthy
    for failed, admission in zip([True, True, False, True, True], in_flight, strict=False):
        if failed:
            await store.record_failure(admission)
        else:
            await store.record_success(admission)
    assert (await store.admit("k")).state == CLOSED  # 2 failures, a success, 2 failures: never 3 in a row
    assert await store.record_failure(in_flight[5]) == OPEN


async def test_an_unreachable_state_backend_lets_requests_through() -> None:
    async with RedisState("redis://127.0.0.1:1/0", connect_timeout=0.2, stream_timeout=0.2) as down:
        breaker = CircuitBreakerPolicy(store_on(down))

        class Principal:
            project_id = "proj_x"

        call = Call("r", Principal(), parse_chat_request(CHAT), Target("openai", "gpt-4o-mini"), 1e12)

        async def upstream(call: Call) -> ChatResult:
            return ChatResult(id="1", model="m", content="through")

        result = await breaker(call, upstream)
        assert result.content == "through"


async def test_failures_open_the_breaker_and_the_next_request_never_reaches_the_upstream(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(**BREAKER, CIRCUIT_BREAKER_RESET_TIMEOUT_S="30")
    fakes.openai.set_default(Reply.error(503, "down"))
    for _ in range(3):
        assert (await gateway.chat(CHAT)).status_code == 503
    assert fakes.openai.request_count == 3
    response = await gateway.chat(CHAT)
    assert fakes.openai.request_count == 3
    assert response.status_code == 503 and response.json()["error"]["code"] == "circuit_open"
    assert 25 <= int(response.headers["retry-after"]) <= 30
    key = f"openai:{gateway.tenant.project_id}"
    assert policy(gateway, "circuit_breaker").states()[key] == "open"
    rows = await gateway.usage_rows()
    assert sorted(row["error_code"] or "" for row in rows).count("circuit_open") == 1
    # Another project and another provider are unaffected.
    other = await create_tenant(gateway.client, "other")
    fakes.openai.set_default(None)
    ok = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=other.headers)
    assert ok.status_code == 200
    claude = await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("x")]})
    assert claude.status_code == 200


async def test_after_the_reset_timeout_one_probe_closes_the_breaker(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(**BREAKER, CIRCUIT_BREAKER_RESET_TIMEOUT_S="1")
    fakes.openai.enqueue(*[Reply.error(500, "down")] * 3)
    for _ in range(3):
        await gateway.chat(CHAT)
    assert (await gateway.chat(CHAT)).json()["error"]["code"] == "circuit_open"
    await asyncio.sleep(1.2)
    # Half-open: one slow probe is let through; a concurrent request is refused meanwhile.
    fakes.openai.enqueue(Reply.text("healthy again", delay_s=0.3))
    probe = asyncio.create_task(gateway.chat(CHAT))
    await fakes.openai.wait_for_requests(4)
    concurrent = await gateway.chat(CHAT)
    assert concurrent.status_code == 503 and concurrent.json()["error"]["code"] == "circuit_open"
    assert (await probe).status_code == 200
    assert policy(gateway, "circuit_breaker").states()[f"openai:{gateway.tenant.project_id}"] == "closed"
    assert (await gateway.chat(CHAT)).status_code == 200
    assert fakes.openai.request_count == 5


async def test_a_failed_probe_opens_the_breaker_again(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(**BREAKER, CIRCUIT_BREAKER_RESET_TIMEOUT_S="1")
    fakes.openai.set_default(Reply.error(503, "still down"))
    for _ in range(3):
        await gateway.chat(CHAT)
    await asyncio.sleep(1.2)
    assert (await gateway.chat(CHAT)).json()["error"]["code"] != "circuit_open"  # the probe went up
    assert fakes.openai.request_count == 4
    assert (await gateway.chat(CHAT)).json()["error"]["code"] == "circuit_open"
    assert fakes.openai.request_count == 4


async def test_client_errors_do_not_count_as_failures(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(**BREAKER)
    fakes.openai.set_default(Reply.error(400, "your request is wrong"))
    for _ in range(5):
        assert (await gateway.chat(CHAT)).status_code == 400
    assert fakes.openai.request_count == 5
    assert policy(gateway, "circuit_breaker").states()[f"openai:{gateway.tenant.project_id}"] == "closed"


async def test_streams_that_break_after_their_first_byte_count_as_failures(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1", CIRCUIT_BREAKER_FAILURE_THRESHOLD="2")
    fakes.gemini.set_default(Reply.text("one two three", cut_after=2))
    body = {"model": "gemini-2.5-flash", "messages": [user("x")], "stream": True}
    for _ in range(2):
        response = await gateway.chat(body)
        assert response.status_code == 200 and '"error"' in response.text
    assert fakes.gemini.request_count == 2
    blocked = await gateway.chat(body)
    assert blocked.status_code == 503 and blocked.json()["error"]["code"] == "circuit_open"
    assert fakes.gemini.request_count == 2


@pytest.mark.parametrize("backend", ["production"], indirect=True)
async def test_with_redis_two_gateway_processes_share_one_breaker(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    env = {**BREAKER, "CIRCUIT_BREAKER_BACKEND": "redis", "CIRCUIT_BREAKER_RESET_TIMEOUT_S": "1"}
    first = await make_gateway(**env)
    second = await make_gateway(tenant=first.tenant, **env)
    fakes.anthropic.set_default(Reply.error(529, "overloaded"))
    body = {"model": "claude-sonnet-4-5", "messages": [user("x")]}
    for _ in range(3):
        await first.chat(body)
    assert fakes.anthropic.request_count == 3
    response = await second.chat(body)
    assert response.json()["error"]["code"] == "circuit_open" and fakes.anthropic.request_count == 3
    assert policy(second, "circuit_breaker").states()[f"anthropic:{first.tenant.project_id}"] == "open"
    # The probe after the reset timeout goes through one process and closes it for both.
    await asyncio.sleep(1.2)
    fakes.anthropic.set_default(None)
    assert (await second.chat(body)).status_code == 200
    assert (await first.chat(body)).status_code == 200
    assert fakes.anthropic.request_count == 5


@pytest.mark.parametrize("backend", ["production"], indirect=True)
async def test_the_memory_backend_keeps_breakers_per_process_even_with_redis(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    first = await make_gateway(**BREAKER, CIRCUIT_BREAKER_BACKEND="memory")
    second = await make_gateway(tenant=first.tenant, **BREAKER, CIRCUIT_BREAKER_BACKEND="memory")
    fakes.openai.set_default(Reply.error(503, "down"))
    for _ in range(3):
        await first.chat(CHAT)
    assert (await first.chat(CHAT)).json()["error"]["code"] == "circuit_open"
    assert (await second.chat(CHAT)).json()["error"]["code"] != "circuit_open"
    assert fakes.openai.request_count == 4
