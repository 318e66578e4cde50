"""The project's named API keys (``/v1/keys/api``): create (secret shown once), list, revoke."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omnigate_sdk._base_client import RequestOptions
from omnigate_sdk._models.keys import APIKey, CreatedAPIKey
from omnigate_sdk._resources._base import (
    AsyncAPIResource,
    CallOptions,
    SyncAPIResource,
    request_options,
    segment,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _create(name: str, allowed_models: Sequence[str] | None, call: CallOptions) -> RequestOptions:
    body: dict[str, Any] = {"name": name}
    if allowed_models is not None:
        body["allowed_models"] = list(allowed_models)
    # Creating twice would leave two live keys: not retried unless asked.
    return request_options("POST", "/v1/keys/api", call, idempotent=False, json=body)


class Keys(SyncAPIResource):
    def create(
        self, name: str, *, allowed_models: Sequence[str] | None = None, **options: Unpack[CallOptions]
    ) -> CreatedAPIKey:
        """A new key for the caller's project; ``allowed_models`` restricts what it may call."""
        response = self._client._send(_create(name, allowed_models, options))
        return self._client._parse(response, CreatedAPIKey)

    def list(self, **options: Unpack[CallOptions]) -> list[APIKey]:
        response = self._client._send(request_options("GET", "/v1/keys/api", options))
        return self._client._parse_list(response, APIKey)

    def revoke(self, key_id: str, **options: Unpack[CallOptions]) -> APIKey:
        """Revoke a key (soft: it stays listed with ``revoked_at``); returns the revoked key."""
        response = self._client._send(request_options("DELETE", f"/v1/keys/api/{segment(key_id)}", options))
        return self._client._parse(response, APIKey)


class AsyncKeys(AsyncAPIResource):
    async def create(
        self, name: str, *, allowed_models: Sequence[str] | None = None, **options: Unpack[CallOptions]
    ) -> CreatedAPIKey:
        """A new key for the caller's project; ``allowed_models`` restricts what it may call."""
        response = await self._client._send(_create(name, allowed_models, options))
        return self._client._parse(response, CreatedAPIKey)

    async def list(self, **options: Unpack[CallOptions]) -> list[APIKey]:
        response = await self._client._send(request_options("GET", "/v1/keys/api", options))
        return self._client._parse_list(response, APIKey)

    async def revoke(self, key_id: str, **options: Unpack[CallOptions]) -> APIKey:
        """Revoke a key (soft: it stays listed with ``revoked_at``); returns the revoked key."""
        response = await self._client._send(
            request_options("DELETE", f"/v1/keys/api/{segment(key_id)}", options)
        )
        return self._client._parse(response, APIKey)
