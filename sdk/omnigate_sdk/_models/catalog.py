"""``/v1/models``: OpenAI's model card plus the gateway's price per million tokens."""

from __future__ import annotations

from omnigate_sdk._models._base import OmnigateModel


class ModelPricing(OmnigateModel):
    currency: str = "USD"
    unit: str = "1M tokens"
    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None


class Model(OmnigateModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""
    pricing: ModelPricing | None = None
