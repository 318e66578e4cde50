"""The model catalogue (``/v1/models``): what the caller's key may use, with prices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnigate_sdk._models.catalog import Model
from omnigate_sdk._resources._base import (
    AsyncAPIResource,
    CallOptions,
    SyncAPIResource,
    request_options,
    segment,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Models(SyncAPIResource):
    def list(self, **options: Unpack[CallOptions]) -> list[Model]:
        response = self._client._send(request_options("GET", "/v1/models", options))
        return self._client._parse_list(response, Model)

    def retrieve(self, model_id: str, **options: Unpack[CallOptions]) -> Model:
        response = self._client._send(request_options("GET", f"/v1/models/{segment(model_id)}", options))
        return self._client._parse(response, Model)


class AsyncModels(AsyncAPIResource):
    async def list(self, **options: Unpack[CallOptions]) -> list[Model]:
        response = await self._client._send(request_options("GET", "/v1/models", options))
        return self._client._parse_list(response, Model)

    async def retrieve(self, model_id: str, **options: Unpack[CallOptions]) -> Model:
        response = await self._client._send(
            request_options("GET", f"/v1/models/{segment(model_id)}", options)
        )
        return self._client._parse(response, Model)
