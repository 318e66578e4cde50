"""A stream that breaks between its response headers and its first chunk is retried, failed over and
counted by the breaker: nothing reached the client yet (UP-4, UP-5)."""

from __future__ import annotations

from typing import Any

import pytest

from omnigate.testing import Reply
from tests.chat.conftest import user
from tests.policies import resilience_fixtures
from tests.policies.resilience_fixtures import GatewayFactory

chat_env, fakes, make_gateway = (
    resilience_fixtures.chat_env,
    resilience_fixtures.fakes,
    resilience_fixtures.make_gateway,
)
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


@pytest.mark.parametrize("provider", list(MODELS))
async def test_a_stream_cut_before_its_first_chunk_is_retried(
    make_gateway: GatewayFactory, fakes: Any, provider: str
) -> None:
    gateway = await make_gateway()
    fake = fakes.for_provider(provider)
    fake.enqueue(Reply.text("lost answer", cut_after=0), Reply.text("second try"))
    body = {"model": MODELS[provider], "messages": [user("x")], "stream": True}
    response = await gateway.chat(body)
    assert response.status_code == 200 and '"error"' not in response.text
    assert "second" in response.text and "lost" not in response.text and fake.request_count == 2
    (row,) = await gateway.usage_rows()
    assert (row["status"], row["attempts"]) == ("ok", 2)


async def test_a_primary_that_always_cuts_before_its_first_chunk_fails_over(
    make_gateway: GatewayFactory, fakes: Any
) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="2")
    fakes.openai.set_default(Reply.text("never", cut_after=0))
    fakes.anthropic.enqueue(Reply.text("from the fallback"))
    body = {
        "model": "gpt-4o-mini",
        "fallback_models": ["claude-sonnet-4-5"],
        "messages": [user("x")],
        "stream": True,
    }
    response = await gateway.chat(body)
    assert response.status_code == 200 and "fallback" in response.text
    assert fakes.openai.request_count == 2 and fakes.anthropic.request_count == 1
    (row,) = await gateway.usage_rows()
    assert row["status"] == "ok" and row["fallback_used"] is True


async def test_cuts_before_the_first_chunk_open_the_breaker(make_gateway: GatewayFactory, fakes: Any) -> None:
    gateway = await make_gateway(RETRY_MAX_ATTEMPTS="1", CIRCUIT_BREAKER_FAILURE_THRESHOLD="2")
    fakes.openai.set_default(Reply.text("never", cut_after=0))
    body = {"model": "gpt-4o-mini", "messages": [user("x")], "stream": True}
    for _ in range(2):
        failed = await gateway.chat(body)
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "upstream_unavailable"
    blocked = await gateway.chat(body)
    assert blocked.status_code == 503 and blocked.json()["error"]["code"] == "circuit_open"
    assert fakes.openai.request_count == 2
