"""Cancelled and cut streams are recorded and settled with the usage their upstream reported before the end."""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import pytest

from omnigate.testing import Reply, Usage
from tests.chat.conftest import MODELS, Fakes, Gateway, Served, user
from tests.chat.test_accounting import PRICE_KEYS, hand_cost
from tests.chat.test_streaming import wait_for_usage_row
from tests.observability.test_prometheus import scrape, total
from tests.policies import admission_fixtures
from tests.policies.admission_fixtures import AdmissionGateways, exact_reply, set_budgets, usd, worst_case

# The budget test's fixtures (chat_env and fakes come from tests/chat/conftest.py).
admission_env, gateways = admission_fixtures.admission_env, admission_fixtures.gateways

PIECES = [f"w{i} " for i in range(20)]
# Gemini has no cache writes on the wire; its fake grows the output by 300 / 20 = 15 tokens a chunk.
USAGE = {
    "anthropic": Usage(input=1200, output=300, cache_read=200, cache_write=100),
    "gemini": Usage(input=1200, output=300, cache_read=200),
}


def row_usage(row: dict[str, Any]) -> Usage:
    """A usage row's tokens in the fakes' vocabulary (to price them by hand)."""
    return Usage(
        input=row["input_tokens"],
        output=row["output_tokens"],
        cache_read=row["cache_read_tokens"],
        cache_write=row["cache_write_tokens"],
    )


def assert_input_as_reported(provider: str, usage: Usage) -> None:
    expected = USAGE[provider]
    assert (usage.input, usage.cache_read, usage.cache_write) == (
        expected.input,
        expected.cache_read,
        expected.cache_write,
    )


async def only_row(served: Served) -> dict[str, Any]:
    """The served gateway's one usage row, once its writer flushed it, as a dict."""
    return attrs.asdict(await wait_for_usage_row(served))


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_a_cancelled_stream_is_recorded_with_the_usage_reported_so_far(
    served: Served, fakes: Fakes, provider: str
) -> None:
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text(PIECES, usage=USAGE[provider], chunk_delay_s=0.25))
    body = {"model": MODELS[provider], "messages": [user("x")], "stream": True}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=served.tenant.headers
        ) as response:
            async for line in response.aiter_lines():
                if "w1" in line:
                    break
    await fake.wait_disconnected(timeout_s=5)
    row = await only_row(served)
    assert row["status"] == "cancelled" and row["http_status"] == 499
    usage = row_usage(row)
    assert_input_as_reported(provider, usage)
    if provider == "anthropic":
        assert usage.output == 1  # message_start's count: no message_delta came before the cancel
    else:
        assert 0 < usage.output < 300 and usage.output % 15 == 0  # the last usageMetadata seen
    assert row["cost_micros"] == hand_cost(provider, usage) > 0


# Anthropic: message_start, content_block_start, ping and two deltas; Gemini: two chunks of twenty.
CUTS = {"anthropic": (5, 1), "gemini": (2, 30)}


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_a_cut_stream_is_recorded_with_the_usage_reported_so_far(
    gateway: Gateway, fakes: Fakes, provider: str
) -> None:
    cut_after, output = CUTS[provider]
    fakes.for_provider(provider).enqueue(Reply.text(PIECES, usage=USAGE[provider], cut_after=cut_after))
    response = await gateway.chat({"model": MODELS[provider], "messages": [user("x")], "stream": True})
    assert response.status_code == 200 and "w1" in response.text
    (row,) = await gateway.usage_rows()
    assert row["status"] == "truncated"
    usage = row_usage(row)
    assert_input_as_reported(provider, usage)
    assert usage.output == output
    assert row["cost_micros"] == hand_cost(provider, usage) > 0
    metrics = await scrape(gateway.client)  # the metrics observer counts what the record says
    assert total(metrics, "omnigate_tokens_total", provider=provider, kind="input") == usage.input
    assert total(metrics, "omnigate_cost_usd_total", provider=provider) == pytest.approx(
        row["cost_micros"] / 1e6
    )


async def test_a_cut_openai_stream_knows_no_usage(gateway: Gateway, fakes: Fakes) -> None:
    # OpenAI reports usage only in its last event: a cut stream is recorded with none (no estimate).
    fakes.openai.enqueue(Reply.text(PIECES, usage=Usage(input=1200, output=300), cut_after=4))
    response = await gateway.chat({"model": MODELS["openai"], "messages": [user("x")], "stream": True})
    assert response.status_code == 200 and "w1" in response.text
    (row,) = await gateway.usage_rows()
    assert row["status"] == "truncated"
    assert (row["input_tokens"], row["output_tokens"], row["cost_micros"]) == (0, 0, 0)


async def test_a_stream_failing_before_its_first_chunk_bills_nothing(gateway: Gateway, fakes: Fakes) -> None:
    # message_start reported the input, but nothing was relayed: an error, not a truncated answer.
    fakes.anthropic.enqueue(Reply.text(PIECES, usage=USAGE["anthropic"], error_after=1))
    response = await gateway.chat({"model": MODELS["anthropic"], "messages": [user("x")], "stream": True})
    assert response.status_code >= 500
    (row,) = await gateway.usage_rows()
    assert row["status"] == "error"
    assert (row["input_tokens"], row["output_tokens"], row["cost_micros"]) == (0, 0, 0)


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
async def test_a_cut_stream_settles_budget_and_tpm_to_what_it_recorded(
    gateways: AdmissionGateways, fakes: Fakes, provider: str
) -> None:
    gateway = await gateways.start()
    payload = {"model": MODELS[provider], "messages": [user("hello there")], "max_tokens": 1000}
    reservation = worst_case(payload, PRICE_KEYS[provider])
    budget, tpm = 10 * reservation, 100_000
    await set_budgets(gateway.client, gateway.tenant, project_daily_budget_usd=usd(budget), project_tpm=tpm)
    cut_after, _ = CUTS[provider]
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text(PIECES, usage=USAGE[provider], cut_after=cut_after), exact_reply(payload))
    cut = await gateway.chat({**payload, "stream": True})
    assert cut.status_code == 200
    (row,) = await gateway.usage_rows()
    assert row["status"] == "truncated" and row["cost_micros"] > 0
    # The next admission sees the cut stream's settled spend and tokens, plus its own reservation.
    after = await gateway.chat(payload)
    assert after.status_code == 200, after.text
    remaining = int(round(float(after.headers["x-budget-project-daily-remaining-usd"]) * 1_000_000))
    assert budget - remaining - reservation == row["cost_micros"]
    estimate = tpm - int(cut.headers["x-ratelimit-remaining-tokens"])
    used = row["input_tokens"] + row["output_tokens"]
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == tpm - used - estimate
