"""What both clients share and that does no I/O: configuration, auth, request building, retry decisions.

``Client`` and ``AsyncClient`` (``_client.py``) only add the I/O loop around these decisions.

Retries: idempotent calls (GET, PUT, DELETE and the admin PATCHes, which set absolute values) retry up
to ``max_retries`` times on connection failures, timeouts, 408/409/429/5xx, or whenever the gateway
says ``x-should-retry: true``; never when it says ``x-should-retry: false`` (budget refusals). Calls that
are not idempotent (POST chat, key and tenant creation) retry only when the request provably never
left this process (connect failure, connect or pool timeout), unless the client was built with
``retry_non_idempotent=True`` or the call passes its own ``max_retries``. The wait is exponential
backoff with jitter, or exactly what ``retry-after-ms`` / ``retry-after`` ask for; a server asking for
longer than ``max_retry_after`` seconds gets no retry (the error is raised at once).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from omnigate_sdk._exceptions import APIResponseValidationError, OmnigateSDKError
from omnigate_sdk._models._base import OmnigateModel
from omnigate_sdk._types import NOT_GIVEN, Auth, Headers, NotGiven, Timeout
from omnigate_sdk._version import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BASE_DELAY = 0.5
DEFAULT_RETRY_MAX_DELAY = 8.0
DEFAULT_MAX_RETRY_AFTER = 60.0
M = TypeVar("M", bound=OmnigateModel)
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Failures that happen before any byte of the request is sent: safe to retry even a POST.
UNSENT_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
RETRYABLE_ERRORS: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


@dataclass(frozen=True)
class RequestOptions:
    """One call as a resource describes it; per-call overrides are NOT_GIVEN when not set."""

    method: str
    path: str
    auth: Auth = "project"
    idempotent: bool = True
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Headers | None = None
    timeout: Timeout | NotGiven = NOT_GIVEN
    max_retries: int | NotGiven = NOT_GIVEN
    stream: bool = False


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``retry-after`` (seconds or HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (moment - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def should_retry_response(response: httpx.Response) -> bool:
    verdict = response.headers.get("x-should-retry", "").strip().lower()
    if verdict == "true":
        return True
    if verdict == "false":
        return False
    return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500


def _check_retries(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{name} must be an int >= 0 (0 turns retries off), got {value!r}")
    return value


def _check_key(value: str | None) -> str | None:
    if value is not None and any(ch in value for ch in "\r\n"):
        raise OmnigateSDKError("an API key must not contain line breaks")
    return value or None


class BaseClient:
    """Configuration and the I/O-free half of every call, shared by ``Client`` and ``AsyncClient``."""

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
    ) -> None:
        self.api_key = _check_key(api_key if api_key is not None else os.environ.get("OMNIGATE_API_KEY"))
        self.admin_key = _check_key(
            admin_key if admin_key is not None else os.environ.get("OMNIGATE_ADMIN_KEY")
        )
        raw_url = (
            base_url if base_url is not None else os.environ.get("OMNIGATE_BASE_URL") or DEFAULT_BASE_URL
        )
        self.base_url = httpx.URL(str(raw_url).rstrip("/"))
        if self.base_url.scheme not in ("http", "https") or not self.base_url.host:
            raise OmnigateSDKError(f"base_url must be an http(s) URL, got {str(raw_url)!r}")
        self.timeout = timeout
        self.max_retries = _check_retries(max_retries, "max_retries")
        self.retry_non_idempotent = retry_non_idempotent
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.max_retry_after = max_retry_after
        self.default_headers = dict(default_headers or {})

    def _auth_headers(self, auth: Auth) -> dict[str, str]:
        if auth == "admin":
            if self.admin_key is None:
                raise OmnigateSDKError(
                    "admin routes need the admin key: pass admin_key= or set OMNIGATE_ADMIN_KEY"
                )
            return {"x-admin-key": self.admin_key}
        if self.api_key is None:
            raise OmnigateSDKError("no project API key: pass api_key= or set OMNIGATE_API_KEY")
        return {"authorization": f"Bearer {self.api_key}"}

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, options: RequestOptions
    ) -> httpx.Request:
        headers = {
            "user-agent": f"omnigate-sdk/{__version__} python",
            "accept": "text/event-stream" if options.stream else "application/json",
            **self.default_headers,
            **self._auth_headers(options.auth),
            **(options.headers or {}),
        }
        params = {name: value for name, value in (options.params or {}).items() if value is not None}
        timeout = self.timeout if isinstance(options.timeout, NotGiven) else options.timeout
        return http.build_request(
            options.method,
            str(self.base_url) + options.path,
            params=params or None,
            json=options.json,
            headers=headers,
            timeout=timeout,
        )

    def _retries_for(self, options: RequestOptions, *, sent: bool) -> int:
        """How many retries this failure allows: ``sent`` is False when the request never left."""
        if not isinstance(options.max_retries, NotGiven):
            return _check_retries(options.max_retries, "max_retries")
        if options.idempotent or self.retry_non_idempotent or not sent:
            return self.max_retries
        return 0

    def _delay_after_error(self, options: RequestOptions, attempt: int, exc: httpx.HTTPError) -> float | None:
        """Seconds to wait before retrying after a transport failure, or None to give up."""
        if not isinstance(exc, RETRYABLE_ERRORS):
            return None
        if attempt >= self._retries_for(options, sent=not isinstance(exc, UNSENT_ERRORS)):
            return None
        return self._backoff(attempt)

    def _delay_after_response(
        self, options: RequestOptions, attempt: int, response: httpx.Response
    ) -> float | None:
        """Seconds to wait before retrying after an error status, or None to give up."""
        if attempt >= self._retries_for(options, sent=True) or not should_retry_response(response):
            return None
        asked = parse_retry_after(response.headers)
        if asked is None:
            return self._backoff(attempt)
        return asked if asked <= self.max_retry_after else None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry_base_delay * 2.0**attempt, self.retry_max_delay)
        return ceiling * (0.5 + random.random() / 2)

    def _parse(self, response: httpx.Response, cast: type[M]) -> M:
        data = self._json(response)
        return self._validate(response, data, cast)

    def _parse_list(self, response: httpx.Response, cast: type[M]) -> list[M]:
        data = self._json(response)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self._invalid(response, "expected a list object with a 'data' array", data)
        return [self._validate(response, item, cast) for item in items]

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._invalid(response, "the response body is not JSON", response.text[:200]) from None

    def _validate(self, response: httpx.Response, data: Any, cast: type[M]) -> M:
        try:
            parsed = cast.model_validate(data)
        except ValidationError as exc:
            raise self._invalid(response, f"the response does not fit {cast.__name__}: {exc}", data) from None
        parsed._headers = response.headers
        return parsed

    @staticmethod
    def _invalid(response: httpx.Response, message: str, body: Any) -> APIResponseValidationError:
        return APIResponseValidationError(
            message,
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
            request=response.request,
            response=response,
            body=body,
        )
