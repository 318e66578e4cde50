"""`/v1/models`: OpenAI's list and card shapes with prices, read by the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.chat.conftest import Gateway


def sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    http_client = httpx.AsyncClient(transport=gateway.client._transport, base_url="http://testserver")
    return openai.AsyncOpenAI(
        api_key=gateway.tenant.key, base_url="http://testserver/v1", http_client=http_client, max_retries=0
    )


async def test_list_has_every_provider_with_prices(gateway: Gateway) -> None:
    page = await sdk(gateway).models.list()
    by_id = {model.id: model for model in page.data}
    assert "gpt-4o" in by_id and by_id["gpt-4o"].owned_by == "openai"
    assert any(model_id.startswith("claude-") for model_id in by_id)
    assert any(model_id.startswith("gemini-") for model_id in by_id)
    assert "azure/chat-deployment" in by_id  # from the operator's price file
    pricing = by_id["gpt-4o-mini"].model_extra["pricing"]  # type: ignore[index]
    assert pricing == {
        "currency": "USD",
        "unit": "1M tokens",
        "input": 0.15,
        "output": 0.6,
        "cache_read": 0.075,
        "cache_write": 0.0,
    }


async def test_card_for_a_routable_model_and_404_for_others(gateway: Gateway) -> None:
    client = sdk(gateway)
    card = await client.models.retrieve("claude-sonnet-4-5")
    assert card.owned_by == "anthropic" and card.model_extra["pricing"]["output"] == 15  # type: ignore[index]
    explicit = await gateway.client.get(
        "/v1/models/anthropic/claude-sonnet-4-5", headers=gateway.tenant.headers
    )
    assert explicit.status_code == 200 and explicit.json()["owned_by"] == "anthropic"
    unpriced = await client.models.retrieve("gpt-unknown-future")
    assert unpriced.model_extra["pricing"] is None  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("llama-3")
