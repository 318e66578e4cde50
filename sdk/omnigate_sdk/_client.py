"""``Client`` and ``AsyncClient``: the base client's decisions plus the I/O loop (send, retry, sleep)."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import httpx

from omnigate_sdk._base_client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRY_BASE_DELAY,
    DEFAULT_RETRY_MAX_DELAY,
    DEFAULT_TIMEOUT,
    BaseClient,
    RequestOptions,
)
from omnigate_sdk._exceptions import connection_error, status_error_from_response
from omnigate_sdk._resources.admin import Admin, AsyncAdmin
from omnigate_sdk._resources.chat import AsyncChat, Chat
from omnigate_sdk._resources.credentials import AsyncCredentials, Credentials
from omnigate_sdk._resources.keys import AsyncKeys, Keys
from omnigate_sdk._resources.metrics import AsyncMetrics, Metrics
from omnigate_sdk._resources.models import AsyncModels, Models
from omnigate_sdk._types import Headers, Timeout


class Client(BaseClient):
    """A synchronous omnigate client.

    ``api_key`` (or ``OMNIGATE_API_KEY``) authenticates project routes, ``admin_key`` (or
    ``OMNIGATE_ADMIN_KEY``) the admin routes; ``base_url`` (or ``OMNIGATE_BASE_URL``) is the gateway's
    root. ``transport=`` or ``http_client=`` replace the HTTP layer (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_non_idempotent: bool = False,
        retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        default_headers: Headers | None = None,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            admin_key=admin_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_non_idempotent=retry_non_idempotent,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            max_retry_after=max_retry_after,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        self.chat = Chat(self)
        self.models = Models(self)
        self.keys = Keys(self)
        self.credentials = Credentials(self)
        self.metrics = Metrics(self)
        self.admin = Admin(self)

    def close(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in: that stays yours)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _send(self, options: RequestOptions) -> httpx.Response:
        """The successful response (body read unless streaming), after retries; raises the typed error."""
        attempt = 0
        while True:
            request = self._build_request(self._http, options)
            try:
                response = self._http.send(request, stream=options.stream)
            except httpx.HTTPError as exc:
                delay = self._delay_after_error(options, attempt, exc)
                if delay is None:
                    raise connection_error(exc, request) from exc
            else:
                if response.is_success:
                    return response
                if options.stream:
                    try:
                        response.read()
                    except httpx.HTTPError as exc:
                        raise connection_error(exc, request) from exc
                    finally:
                        response.close()
                delay = self._delay_after_response(options, attempt, response)
                if delay is None:
                    raise status_error_from_response(response)
            attempt += 1
            self._sleep(delay)


class AsyncClient(BaseClient):
    """An asynchronous omnigate client; the same resources as ``Client``, awaited."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        admin_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_non_idempotent: bool = False,
        retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        default_headers: Headers | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            admin_key=admin_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_non_idempotent=retry_non_idempotent,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            max_retry_after=max_retry_after,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False
        )
        self.chat = AsyncChat(self)
        self.models = AsyncModels(self)
        self.keys = AsyncKeys(self)
        self.credentials = AsyncCredentials(self)
        self.metrics = AsyncMetrics(self)
        self.admin = AsyncAdmin(self)

    async def close(self) -> None:
        """Close the connection pool (not an ``http_client`` you passed in: that stays yours)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _send(self, options: RequestOptions) -> httpx.Response:
        """The successful response (body read unless streaming), after retries; raises the typed error."""
        attempt = 0
        while True:
            request = self._build_request(self._http, options)
            try:
                response = await self._http.send(request, stream=options.stream)
            except httpx.HTTPError as exc:
                delay = self._delay_after_error(options, attempt, exc)
                if delay is None:
                    raise connection_error(exc, request) from exc
            else:
                if response.is_success:
                    return response
                if options.stream:
                    try:
                        await response.aread()
                    except httpx.HTTPError as exc:
                        raise connection_error(exc, request) from exc
                    finally:
                        await response.aclose()
                delay = self._delay_after_response(options, attempt, response)
                if delay is None:
                    raise status_error_from_response(response)
            attempt += 1
            await self._sleep(delay)
