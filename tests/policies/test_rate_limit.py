"""Rate limits: exact per-minute request and token counters across processes, headers, one round trip."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from omnigate.policies.rate_limit import reset_duration
from omnigate.state.base import Counter, Reservation
from omnigate.testing import Reply, Usage
from omnigate.testing.pytest_plugin import run_gateway
from tests.chat.conftest import GATEWAY_KEYS, TEST_PRICES, Fakes, Gateway, create_tenant
from tests.conftest import gateway_env
from tests.policies import admission_fixtures
from tests.policies.admission_fixtures import (
    AdmissionGateways,
    FakeClock,
    body,
    estimated_tokens,
    exact_reply,
    set_budgets,
    usd,
    utc,
    worst_case,
)

# The fixtures these tests use (pytest finds fixtures among a module's attributes).
chat_env, fakes, admission_env, gateways = (
    admission_fixtures.chat_env,
    admission_fixtures.fakes,
    admission_fixtures.admission_env,
    admission_fixtures.gateways,
)

MID_MINUTE = "2099-06-01T12:00:30.200"


def assert_rate_limited(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert response.headers["retry-after"] == str(retry_after)


def test_reset_durations_in_openai_style() -> None:
    assert [reset_duration(s) for s in (0, 0.2501, 1, 17.25, 59.9999)] == [
        "0ms",
        "251ms",
        "1s",
        "17.25s",
        "60s",
    ]


async def test_rpm_is_exact_across_two_instances_sharing_the_state(
    gateways: AdmissionGateways, fakes: Fakes, backend: dict[str, str]
) -> None:
    clock = FakeClock(utc(MID_MINUTE))
    first = await gateways.start(clock=clock)
    await set_budgets(first.client, first.tenant, project_rpm=20)
    # Two app instances share the counters through Redis (same OMNIGATE_STATE_PREFIX); the embedded
    # backend's state lives in one process, so there both halves go to the one instance.
    second = await gateways.start(tenant=first.tenant, clock=clock) if "REDIS_URL" in backend else first

    responses = await asyncio.gather(
        *(instance.chat(body()) for _ in range(25) for instance in (first, second))
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 20 and statuses.count(429) == 30
    assert fakes.openai.request_count == 20
    refused = [r for r in responses if r.status_code == 429]
    for response in refused:
        assert_rate_limited(response, retry_after=30)
        assert response.headers["x-ratelimit-limit-requests"] == "20"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-reset-requests"] == "29.8s"
    admitted = sorted(
        int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200
    )
    assert admitted == list(range(20))  # each admission saw the counter exactly once

    clock.set("2099-06-01T12:01:00")  # the next minute starts from zero
    response = await second.chat(body())
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining-requests"] == "19"
    assert response.headers["x-ratelimit-reset-requests"] == "60s"


async def test_tpm_reserves_the_estimate_and_settles_to_the_real_tokens(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start(clock=FakeClock(utc(MID_MINUTE)))
    payload = body()
    estimate = estimated_tokens(payload)
    tpm = 2 * estimate + estimate // 2
    await set_budgets(gateway.client, gateway.tenant, project_tpm=tpm)
    fakes.openai.enqueue(
        Reply.text("one", usage=Usage(input=20, output=30)),
        Reply.error(400, "refused upstream"),
        Reply.text("two", usage=Usage(input=5, output=7)),
    )
    first = await gateway.chat(payload)
    assert first.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert first.headers["x-ratelimit-remaining-tokens"] == str(tpm - estimate)
    assert "x-ratelimit-limit-requests" not in first.headers  # no RPM set
    assert (await gateway.chat(payload)).status_code == 400  # no tokens used: all released
    second = await gateway.chat({**payload, "stream": True})
    assert second.headers["x-ratelimit-remaining-tokens"] == str(tpm - 50 - estimate)
    third = await gateway.chat(payload)
    assert third.headers["x-ratelimit-remaining-tokens"] == str(tpm - 50 - 12 - estimate)


async def test_concurrent_token_reservations_never_exceed_tpm(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start(clock=FakeClock(utc(MID_MINUTE)))
    payload = body()
    estimate = estimated_tokens(payload)
    await set_budgets(gateway.client, gateway.tenant, project_tpm=5 * estimate + estimate // 2)
    fakes.openai.set_default(exact_reply(payload))  # every request uses exactly its estimate
    responses = await asyncio.gather(*(gateway.chat(payload) for _ in range(40)))
    assert [r.status_code for r in responses].count(200) == 5
    assert fakes.openai.billed.total == 5 * estimate


async def test_a_request_larger_than_the_tpm_limit_is_not_retryable(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start()
    await set_budgets(gateway.client, gateway.tenant, project_tpm=1000)
    response = await gateway.chat(body(max_tokens=5000))
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["x-should-retry"] == "false" and "retry-after" not in response.headers
    assert "more than the project's limit of 1000 tokens per minute" in response.json()["error"]["message"]


class CountingState:
    """Records the counters each reserve/add touches (rate-limit and budget keys only)."""

    def __init__(self, gateway: Gateway) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        state = gateway.runtime.state
        reserve, add, add_later = state.reserve, state.add, state.add_later

        async def counting_reserve(items: Sequence[Counter]) -> Reservation:
            self._note("reserve", items)
            return await reserve(items)

        async def counting_add(items: Sequence[Counter]) -> tuple[int, ...]:
            self._note("add", items)
            return await add(items)

        def counting_add_later(items: Sequence[Counter], on_error: Callable[[Exception], None]) -> None:
            self._note("add", items)
            add_later(items, on_error)

        state.reserve, state.add, state.add_later = counting_reserve, counting_add, counting_add_later

    def _note(self, operation: str, items: Sequence[Counter]) -> None:
        keys = tuple(item.key.split(":")[0] for item in items)
        if any(key in ("rl", "budget") for key in keys):
            self.calls.append((operation, keys))

    def take(self) -> list[tuple[str, tuple[str, ...]]]:
        calls, self.calls = self.calls, []
        return calls


async def test_rate_and_budget_share_one_round_trip_and_a_refusal_consumes_nothing(
    gateways: AdmissionGateways, fakes: Fakes
) -> None:
    gateway = await gateways.start(clock=FakeClock(utc(MID_MINUTE)))
    payload = body()
    reservation = worst_case(payload)
    fakes.openai.set_default(exact_reply(payload))
    await set_budgets(
        gateway.client,
        gateway.tenant,
        project_rpm=3,
        project_tpm=100_000,
        project_daily_budget_usd=usd(reservation),
    )
    counting = CountingState(gateway)
    first = await gateway.chat(payload)
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-requests"] == "2"
    seeding = [call for call in counting.take() if call[0] == "reserve" and call[1] == ("budget", "budget")]
    assert len(seeding) == 1  # the window's counter was rebuilt once, before the first admission

    refused = await gateway.chat(payload)  # over budget: all-or-nothing, so no RPM or TPM is taken
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert counting.take() == [("reserve", ("rl", "rl", "budget"))]

    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=usd(3 * reservation))
    fakes.openai.enqueue(Reply.text("short", usage=Usage(input=3, output=4)))  # settles below the estimate
    second = await gateway.chat(payload)
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-requests"] == "1"  # the refused request did not count
    assert counting.take() == [("reserve", ("rl", "rl", "budget")), ("add", ("rl", "budget"))]


async def test_without_the_budget_policy_rate_limits_reserve_on_their_own(
    gateways: AdmissionGateways,
) -> None:
    gateway = await gateways.start(clock=FakeClock(utc(MID_MINUTE)), policies=("rate_limit",))
    await set_budgets(gateway.client, gateway.tenant, project_rpm=2, project_daily_budget_usd=0)
    responses = [await gateway.chat(body()) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[1].headers["x-ratelimit-remaining-requests"] == "0"
    assert "budget" not in dict(gateway.runtime.plugins.policies)


async def test_blocking_the_rate_limit_plugin_disables_rate_limits(gateways: AdmissionGateways) -> None:
    gateway = await gateways.start(OMNIGATE_BLOCK_PLUGINS="rate_limit")
    await set_budgets(gateway.client, gateway.tenant, project_rpm=1, project_daily_budget_usd=10)
    responses = [await gateway.chat(body()) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "x-ratelimit-limit-requests" not in responses[0].headers
    assert "x-budget-project-daily-remaining-usd" in responses[0].headers


async def test_shared_state_down_fails_closed_unless_rate_limits_may_fail_open(
    tmp_path: Path, fakes: Fakes
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TEST_PRICES))
    env = gateway_env(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'omnigate.db'}"},
        REDIS_URL="redis://127.0.0.1:1/0",  # nothing listens there
        OPENAI_BASE_URL=fakes.openai.base_url,
        OPENAI_API_KEY=GATEWAY_KEYS["openai"],
        MODEL_PRICES_FILE=str(prices),
        RETRY_MAX_ATTEMPTS="1",
    )
    for fail_open in ("false", "true"):
        async with run_gateway({**env, "RATE_LIMIT_FAIL_OPEN": fail_open}) as client:
            tenant = await create_tenant(client)
            headers = tenant.headers
            assert (
                await client.post("/v1/chat/completions", json=body(), headers=headers)
            ).status_code == 200
            await set_budgets(client, tenant, project_rpm=10)
            limited = await client.post("/v1/chat/completions", json=body(), headers=headers)
            if fail_open == "true":
                assert limited.status_code == 200 and "x-ratelimit-limit-requests" not in limited.headers
            else:
                assert_unavailable(limited)
            await set_budgets(client, tenant, project_daily_budget_usd=10)
            assert_unavailable(await client.post("/v1/chat/completions", json=body(), headers=headers))


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "state_unavailable" and "shared state (redis)" in error["message"]
    assert response.headers["retry-after"] == "1"
