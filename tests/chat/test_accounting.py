"""Usage records: exactly one per request whatever happens, and costs that match a hand computation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnigate.store.credentials import set_credential
from omnigate.testing import Reply, Usage
from tests.chat.conftest import MODELS, TEST_PRICES, Fakes, Gateway, user

PRICE_KEYS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
    "azure": "azure/chat-deployment",
}


def hand_cost(provider: str, usage: Usage) -> int:
    """Micro-USD: USD per million tokens is micro-USD per token."""
    price = TEST_PRICES[PRICE_KEYS[provider]]
    uncached = usage.input - usage.cache_read - usage.cache_write
    micros = (
        uncached * price["input"]
        + usage.cache_read * price["cache_read"]
        + usage.cache_write * price["cache_write"]
        + usage.output * price["output"]
    )
    return round(micros)


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("stream", [False, True])
async def test_recorded_cost_matches_a_hand_computation(
    gateway: Gateway, fakes: Fakes, provider: str, stream: bool
) -> None:
    usage = Usage(
        input=12_000,
        output=3_000,
        cache_read=4_000,
        reasoning=500,
        cache_write=1_000 if provider == "anthropic" else 0,
    )
    fakes.for_provider(provider).enqueue(Reply.text("priced answer", usage=usage))
    response = await gateway.chat({"model": MODELS[provider], "messages": [user("x")], "stream": stream})
    assert response.status_code == 200
    (row,) = await gateway.usage_rows()
    assert row["status"] == "ok" and row["provider"] == provider and row["stream"] is stream
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (12_000, 3_000, 4_000)
    if provider == "anthropic":
        assert row["cache_write_tokens"] == 1_000
    if provider in ("openai", "gemini", "azure"):
        assert row["reasoning_tokens"] == 500
    assert row["cost_micros"] == hand_cost(provider, usage)


async def test_a_model_without_a_price_is_recorded_as_unknown_not_zero(
    gateway: Gateway, fakes: Fakes
) -> None:
    fakes.openai.enqueue(Reply.text("x", usage=Usage(input=10, output=10)))
    response = await gateway.chat({"model": "gpt-unpriced-experimental", "messages": [user("x")]})
    assert response.status_code == 200 and "x-omnigate-cost-usd" not in response.headers
    (row,) = await gateway.usage_rows()
    assert row["cost_micros"] is None and row["status"] == "ok"
    assert "openai/gpt-unpriced-experimental" in gateway.runtime.prices.unknown_models


async def test_exactly_one_record_per_request_of_every_kind(gateway: Gateway, fakes: Fakes) -> None:
    kinds: list[tuple[dict[str, Any], Reply | None]] = []
    for i in range(8):
        kinds.append(({"model": "gpt-4o-mini", "messages": [user(f"json {i}")]}, Reply.text("ok")))
        kinds.append(
            ({"model": "claude-sonnet-4-5", "messages": [user(f"s {i}")], "stream": True}, Reply.text("a b"))
        )
        kinds.append(({"model": "gemini-2.5-flash", "messages": [user(f"e {i}")]}, Reply.error(500, "boom")))
        kinds.append(
            (
                {"model": "gemini-2.5-flash", "messages": [user(f"c {i}")], "stream": True},
                Reply.text("a b c", cut_after=2, chunk_delay_s=0.05),
            )
        )
        kinds.append(({"model": "nope-model", "messages": [user("x")]}, None))
        kinds.append(({"model": "gpt-4o-mini", "messages": []}, None))
    for body, reply in kinds:
        if reply is not None:
            fakes.for_provider(gateway.runtime.engine.router.resolve(body["model"]).provider).enqueue(reply)
    # Replies are consumed in arrival order per fake; all are interchangeable within a kind.
    responses = await asyncio.gather(*(gateway.chat(body) for body, _ in kinds))
    rows = await gateway.usage_rows()
    assert len(rows) == len(kinds) == len(responses)
    assert len({row["request_id"] for row in rows}) == len(kinds)
    assert {r.headers["x-request-id"] for r in responses} == {row["request_id"] for row in rows}
    statuses = sorted(row["status"] for row in rows)
    # A cut stream is "truncated" when a chunk reached the client first, else an "error" with a real status.
    assert statuses.count("ok") == 16 and statuses.count("error") >= 24
    assert statuses.count("truncated") + statuses.count("error") == 32


async def test_a_project_credential_wins_over_the_gateway_key(gateway: Gateway, fakes: Fakes) -> None:
    runtime = gateway.runtime
    await set_credential(
        runtime.db, runtime.secret_box, gateway.tenant.project_id, "anthropic", "sk-ant-project-own-1234"
    )
    await gateway.chat({"model": "claude-sonnet-4-5", "messages": [user("x")]})
    headers = fakes.anthropic.requests[-1].headers
    assert "sk-ant-project-own-1234" in (headers.get("x-api-key", "") + headers.get("authorization", ""))


async def test_no_credential_at_all_is_a_clear_400(
    gateway: Gateway, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = gateway.runtime.engine.plugins.providers["gemini"]
    monkeypatch.setattr(provider, "gateway_credential", lambda: None)
    response = await gateway.chat({"model": "gemini-2.5-flash", "messages": [user("x")]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "provider_not_configured" and "gemini" in error["message"]
    assert fakes.gemini.request_count == 0
