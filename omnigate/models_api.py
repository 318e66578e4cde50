"""`GET /v1/models` and `/v1/models/{id}`: OpenAI's list and card shapes, each with its price per million tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import json_response, list_response, runtime_of
from omnigate.errors import ModelNotFoundError, NotFoundError, OmnigateError
from omnigate.pricing import ModelPrice, PriceBook
from omnigate.runtime import Runtime
from omnigate.types import SCOPE_PRINCIPAL

CATALOG_KEY = "models.catalog"


def pricing(price: ModelPrice | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "currency": "USD",
        "unit": "1M tokens",
        "input": float(price.input),
        "output": float(price.output),
        "cache_read": float(price.cache_read if price.cache_read is not None else price.input),
        "cache_write": float(price.cache_write if price.cache_write is not None else price.input),
    }


def card(model_id: str, provider: str, price: ModelPrice | None) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": provider, "pricing": pricing(price)}


def _public_id(runtime: Runtime, provider: str, model: str) -> str | None:
    """The id a client sends for ``model`` at ``provider``: bare when the prefixes route it there."""
    if ":" in model or model.endswith("-"):
        return None  # fine-tune patterns in the price data, not callable models
    try:
        routed = runtime.engine.router.resolve(model)
    except OmnigateError:
        routed = None
    return model if routed is not None and routed.provider == provider else f"{provider}/{model}"


def build_catalog(runtime: Runtime) -> list[dict[str, Any]]:
    prices: PriceBook = runtime.prices
    cards = []
    for provider in sorted(runtime.engine.plugins.providers):
        for model in prices.known_models(provider):
            public = _public_id(runtime, provider, model)
            if public is not None:
                cards.append(card(public, provider, prices.price(provider, model)))
    return cards


def _allowed(request: Request, model_id: str) -> bool:
    allowed = getattr(request.scope[SCOPE_PRINCIPAL], "allowed_models", None)
    return allowed is None or model_id in allowed


async def list_models(request: Request) -> Response:
    runtime = runtime_of(request)
    catalog = runtime.extras.get(CATALOG_KEY)
    if catalog is None:
        catalog = runtime.extras[CATALOG_KEY] = await asyncio.to_thread(build_catalog, runtime)
    return list_response([entry for entry in catalog if _allowed(request, entry["id"])])


async def show_model(request: Request) -> Response:
    runtime = runtime_of(request)
    model_id = request.path_params["model_id"]
    if not _allowed(request, model_id):
        raise NotFoundError(
            f"the model {model_id!r} does not exist or this key may not use it", code="model_not_found"
        )
    try:
        target = runtime.engine.router.resolve(model_id)
    except ModelNotFoundError as exc:
        raise NotFoundError(exc.message, code="model_not_found", param="model") from None
    return json_response(card(model_id, target.provider, runtime.prices.price(target.provider, target.model)))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", show_model, methods=["GET"]),
]
