"""The project's own provider keys (``/v1/credentials/{provider}``); the secret is write-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omnigate_sdk._base_client import RequestOptions
from omnigate_sdk._models.credentials import ProviderCredential
from omnigate_sdk._resources._base import (
    AsyncAPIResource,
    CallOptions,
    SyncAPIResource,
    request_options,
    segment,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _put(provider: str, api_key: str, meta: Mapping[str, Any] | None, call: CallOptions) -> RequestOptions:
    body: dict[str, Any] = {"api_key": api_key}
    if meta is not None:
        body["meta"] = dict(meta)
    return request_options("PUT", f"/v1/credentials/{segment(provider)}", call, json=body)


class Credentials(SyncAPIResource):
    def put(
        self,
        provider: str,
        *,
        api_key: str,
        meta: Mapping[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> ProviderCredential:
        """Set (or replace) the project's key for ``provider``; Azure needs ``meta`` (endpoint, deployment, api_version)."""
        response = self._client._send(_put(provider, api_key, meta, options))
        return self._client._parse(response, ProviderCredential)

    def list(self, **options: Unpack[CallOptions]) -> list[ProviderCredential]:
        """Every provider the project has its own key for."""
        response = self._client._send(request_options("GET", "/v1/credentials", options))
        return self._client._parse_list(response, ProviderCredential)

    def get(self, provider: str, **options: Unpack[CallOptions]) -> ProviderCredential:
        """The stored credential's provider, last four characters and ``meta`` (never the secret)."""
        response = self._client._send(request_options("GET", f"/v1/credentials/{segment(provider)}", options))
        return self._client._parse(response, ProviderCredential)

    def delete(self, provider: str, **options: Unpack[CallOptions]) -> None:
        self._client._send(request_options("DELETE", f"/v1/credentials/{segment(provider)}", options))


class AsyncCredentials(AsyncAPIResource):
    async def put(
        self,
        provider: str,
        *,
        api_key: str,
        meta: Mapping[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> ProviderCredential:
        """Set (or replace) the project's key for ``provider``; Azure needs ``meta`` (endpoint, deployment, api_version)."""
        response = await self._client._send(_put(provider, api_key, meta, options))
        return self._client._parse(response, ProviderCredential)

    async def list(self, **options: Unpack[CallOptions]) -> list[ProviderCredential]:
        """Every provider the project has its own key for."""
        response = await self._client._send(request_options("GET", "/v1/credentials", options))
        return self._client._parse_list(response, ProviderCredential)

    async def get(self, provider: str, **options: Unpack[CallOptions]) -> ProviderCredential:
        """The stored credential's provider, last four characters and ``meta`` (never the secret)."""
        response = await self._client._send(
            request_options("GET", f"/v1/credentials/{segment(provider)}", options)
        )
        return self._client._parse(response, ProviderCredential)

    async def delete(self, provider: str, **options: Unpack[CallOptions]) -> None:
        await self._client._send(request_options("DELETE", f"/v1/credentials/{segment(provider)}", options))
