"""`/v1/credentials/{provider}`: a project's own provider keys (BYOK), encrypted at rest and never shown again."""

from __future__ import annotations

import logging
import re
from typing import Any

import attrs
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import iso_time, json_response, list_response, read_payload, runtime_of
from omnigate.converter import structure
from omnigate.errors import InvalidRequestError, NotFoundError
from omnigate.netguard import Resolve, UnsafeURLError, validate_url
from omnigate.runtime import NotStartedError, Runtime
from omnigate.state.base import StateUnavailableError
from omnigate.store import credentials as credential_store
from omnigate.store.records import Principal, ProviderCredential, UnknownProjectError
from omnigate.types import SCOPE_PRINCIPAL

logger = logging.getLogger("omnigate.api.credentials")

BYOK_PROVIDERS = ("openai", "anthropic", "gemini", "azure")
CREDENTIALS_CHANGED_CHANNEL = "credentials.changed"
MAX_SECRET_LENGTH = 4096
AZURE_API_VERSION = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$")
AZURE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@attrs.frozen
class CredentialPayload:
    api_key: str
    meta: dict[str, Any] | None = None


@attrs.frozen
class AzureMeta:
    endpoint: str
    deployment: str | None = None
    api_version: str | None = None


def render_credential(credential: ProviderCredential) -> dict[str, Any]:
    """What a credential shows: provider, the secret's last four characters, meta; never the secret."""
    return {
        "object": "credential",
        "provider": credential.provider,
        "last4": credential.last4,
        "meta": credential.meta,
        "created_at": iso_time(credential.created_at),
        "updated_at": iso_time(credential.updated_at),
    }


def check_provider(provider: str) -> str:
    if provider not in BYOK_PROVIDERS:
        raise InvalidRequestError(
            f"provider: unsupported value {provider[:40]!r}; expected one of {', '.join(BYOK_PROVIDERS)}",
            param="provider",
        )
    return provider


def check_secret(api_key: str) -> str:
    secret = api_key.strip()
    if not secret:
        raise InvalidRequestError("api_key: must not be empty", param="api_key")
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidRequestError(f"api_key: at most {MAX_SECRET_LENGTH} characters", param="api_key")
    if not secret.isascii() or any(ch.isspace() or not ch.isprintable() for ch in secret):
        raise InvalidRequestError(
            "api_key: must be printable ASCII without spaces or line breaks", param="api_key"
        )
    return secret


async def check_meta(
    provider: str, meta: Any, *, allow_private: bool, resolve: Resolve | None = None
) -> dict[str, Any] | None:
    """Azure needs ``{endpoint, deployment?, api_version?}`` with a safe endpoint; the others take no meta."""
    if provider != "azure":
        if meta:
            raise InvalidRequestError(f"meta: the {provider} provider takes no meta", param="meta")
        return None
    if not isinstance(meta, dict):
        raise InvalidRequestError(
            "meta: required for azure, as {endpoint, deployment?, api_version?}", param="meta"
        )
    parsed = structure(meta, AzureMeta, root="meta")
    try:
        await validate_url(parsed.endpoint, allow_private=allow_private, resolve=resolve)
    except UnsafeURLError as exc:
        raise InvalidRequestError(f"meta.endpoint: {exc}", param="meta.endpoint") from None
    checked: dict[str, Any] = {"endpoint": parsed.endpoint}
    if parsed.deployment is not None:
        if not AZURE_DEPLOYMENT.match(parsed.deployment):
            raise InvalidRequestError(
                "meta.deployment: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                param="meta.deployment",
            )
        checked["deployment"] = parsed.deployment
    if parsed.api_version is not None:
        if not AZURE_API_VERSION.match(parsed.api_version):
            raise InvalidRequestError(
                "meta.api_version: expected a date version such as 2024-10-21 or 2025-04-01-preview",
                param="meta.api_version",
            )
        checked["api_version"] = parsed.api_version
    return checked


async def validated_credential(
    provider: str, api_key: str, meta: Any, *, allow_private: bool, resolve: Resolve | None = None
) -> tuple[str, dict[str, Any] | None]:
    """The secret and meta to store, or a 400 naming the bad field (shared by the API and the CLI)."""
    check_provider(provider)
    secret = check_secret(api_key)
    return secret, await check_meta(provider, meta, allow_private=allow_private, resolve=resolve)


def credential_message(project_id: str, provider: str) -> bytes:
    return orjson.dumps([project_id, provider])


async def announce_change(runtime: Runtime, project_id: str, provider: str) -> None:
    """Drop this process's cached credential at once and tell the others (the cache TTL bounds a lost message)."""
    runtime.engine.credentials.invalidate(project_id, provider)
    try:
        await runtime.state.publish(CREDENTIALS_CHANGED_CHANNEL, credential_message(project_id, provider))
    except StateUnavailableError:
        logger.warning(
            "could not announce a credential change to other processes; they see it within KEY_CACHE_TTL_S"
        )


def on_credential_changed(runtime: Runtime, message: bytes) -> None:
    """Subscriber for CREDENTIALS_CHANGED_CHANNEL."""
    try:
        project_id, provider = orjson.loads(message)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return
    if not (isinstance(project_id, str) and isinstance(provider, str)):
        return
    try:
        runtime.engine.credentials.invalidate(project_id, provider)
    except NotStartedError:
        pass  # nothing cached yet


def _principal(request: Request) -> Principal:
    principal: Principal = request.scope[SCOPE_PRINCIPAL]
    return principal


async def put_credential(request: Request) -> Response:
    provider = check_provider(request.path_params["provider"])
    runtime = runtime_of(request)
    payload, _ = await read_payload(request, CredentialPayload)
    secret, meta = await validated_credential(
        provider, payload.api_key, payload.meta, allow_private=runtime.settings.allow_private_upstreams
    )
    assert runtime.secret_box is not None
    project_id = _principal(request).project_id
    try:
        stored = await credential_store.set_credential(
            runtime.db, runtime.secret_box, project_id, provider, secret, meta
        )
    except UnknownProjectError:
        raise NotFoundError("the project of this API key no longer exists") from None
    await announce_change(runtime, project_id, provider)
    return json_response(render_credential(stored))


async def list_credentials(request: Request) -> Response:
    found = await credential_store.list_credentials(runtime_of(request).db, _principal(request).project_id)
    return list_response([render_credential(credential) for credential in found])


async def get_credential(request: Request) -> Response:
    provider = check_provider(request.path_params["provider"])
    found = await credential_store.list_credentials(runtime_of(request).db, _principal(request).project_id)
    for credential in found:
        if credential.provider == provider:
            return json_response(render_credential(credential))
    raise NotFoundError(f"this project has no {provider} credential")


async def delete_credential(request: Request) -> Response:
    provider = check_provider(request.path_params["provider"])
    runtime = runtime_of(request)
    project_id = _principal(request).project_id
    if not await credential_store.delete_credential(runtime.db, project_id, provider):
        raise NotFoundError(f"this project has no {provider} credential")
    await announce_change(runtime, project_id, provider)
    return json_response({"object": "credential", "provider": provider, "deleted": True})


routes = [
    Route("/v1/credentials", list_credentials, methods=["GET"]),
    Route("/v1/credentials/{provider}", put_credential, methods=["PUT"]),
    Route("/v1/credentials/{provider}", get_credential, methods=["GET"]),
    Route("/v1/credentials/{provider}", delete_credential, methods=["DELETE"]),
]
