"""`/v1/keys/api`: a project's named API keys (create, list, soft-revoke), each call scoped to the caller's project."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import check_name, iso_time, json_response, list_response, read_payload, runtime_of
from omnigate.chat.validate import MODEL_NAME, MODEL_NAME_RULE
from omnigate.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from omnigate.runtime import Runtime
from omnigate.state.base import StateUnavailableError
from omnigate.store import keys as key_store
from omnigate.store.records import ApiKey, Principal, UnknownProjectError
from omnigate.types import SCOPE_PRINCIPAL

logger = logging.getLogger("omnigate.api.keys")

KEYS_REVOKED_CHANNEL = "keys.revoked"
MAX_ALLOWED_MODELS = 100
_KEY_HASH = re.compile(r"^[0-9a-f]{64}$")


@attrs.frozen
class KeyPayload:
    name: str
    allowed_models: list[str] | None = None


def render_key(key: ApiKey) -> dict[str, Any]:
    """A key as clients see it: never its secret (only the display prefix)."""
    return {
        "id": key.id,
        "object": "api_key",
        "project_id": key.project_id,
        "name": key.name,
        "prefix": key.prefix,
        "allowed_models": None if key.allowed_models is None else list(key.allowed_models),
        "created_at": iso_time(key.created_at),
        "last_used_at": iso_time(key.last_used_at),
        "revoked_at": iso_time(key.revoked_at),
    }


def check_allowed_models(models: Sequence[str] | None) -> list[str] | None:
    """Trimmed, de-duplicated model names; None means every model. An empty list is refused, and so is a
    name no chat request could use (the chat surfaces' rule for ``model``)."""
    if models is None:
        return None
    cleaned: list[str] = []
    for model in models:
        name = model.strip()
        if not MODEL_NAME.fullmatch(name):
            raise InvalidRequestError(
                f"allowed_models: model names must be {MODEL_NAME_RULE}", param="allowed_models"
            )
        if name not in cleaned:
            cleaned.append(name)
    if not cleaned:
        raise InvalidRequestError(
            "allowed_models: must name at least one model (omit it or send null for every model)",
            param="allowed_models",
        )
    if len(cleaned) > MAX_ALLOWED_MODELS:
        raise InvalidRequestError(
            f"allowed_models: at most {MAX_ALLOWED_MODELS} models", param="allowed_models"
        )
    return cleaned


def models_for_new_key(creator: Principal, requested: list[str] | None) -> list[str] | None:
    """A key restricted to some models can only mint keys restricted to (a subset of) the same models."""
    limit = creator.allowed_models
    if limit is None:
        return requested
    if requested is None:
        return list(limit)
    outside = [model for model in requested if model not in limit]
    if outside:
        raise PermissionDeniedError(
            f"this API key may not grant models it cannot use itself: {', '.join(outside)}",
            code="model_not_allowed",
            param="allowed_models",
        )
    return requested


async def announce_revocation(runtime: Runtime, key_hash: str) -> None:
    """Stop a revoked key here at once and tell every other process (pub/sub; the cache TTL bounds a lost message)."""
    if runtime.key_cache is not None:
        runtime.key_cache.invalidate(key_hash)
    try:
        await runtime.state.publish(KEYS_REVOKED_CHANNEL, key_hash.encode("ascii"))
    except StateUnavailableError:
        logger.warning(
            "could not announce a key revocation to other processes; they stop it within KEY_CACHE_TTL_S"
        )


def on_key_revoked(runtime: Runtime, message: bytes) -> None:
    """Subscriber for KEYS_REVOKED_CHANNEL: forget the cached principal of the revoked key."""
    key_hash = message.decode("ascii", "replace")
    if runtime.key_cache is not None and _KEY_HASH.match(key_hash):
        runtime.key_cache.invalidate(key_hash)


def _principal(request: Request) -> Principal:
    principal: Principal = request.scope[SCOPE_PRINCIPAL]
    return principal


async def create_key(request: Request) -> Response:
    payload, _ = await read_payload(request, KeyPayload)
    principal = _principal(request)
    name = check_name(payload.name)
    allowed = models_for_new_key(principal, check_allowed_models(payload.allowed_models))
    try:
        key, plaintext = await key_store.create_key(
            runtime_of(request).db, principal.project_id, name, allowed
        )
    except UnknownProjectError:
        raise NotFoundError("the project of this API key no longer exists") from None
    response = json_response({**render_key(key), "key": plaintext}, status=201)
    response.headers["cache-control"] = "no-store"  # the only time the secret is shown
    return response


async def list_keys(request: Request) -> Response:
    found = await key_store.list_keys(runtime_of(request).db, _principal(request).project_id)
    return list_response([render_key(key) for key in found])


async def revoke_key(request: Request) -> Response:
    runtime = runtime_of(request)
    revoked = await key_store.revoke_key_with_hash(
        runtime.db, request.path_params["key_id"], project_id=_principal(request).project_id
    )
    if revoked is None:  # unknown, or another project's: the same answer, so ids do not leak
        raise NotFoundError("no such API key")
    key, key_hash = revoked
    await announce_revocation(runtime, key_hash)
    return json_response(render_key(key))


routes = [
    Route("/v1/keys/api", create_key, methods=["POST"]),
    Route("/v1/keys/api", list_keys, methods=["GET"]),
    Route("/v1/keys/api/{key_id}", revoke_key, methods=["DELETE"]),
]
