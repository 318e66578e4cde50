"""Upstream HTTP: one aiohttp session per provider, and every upstream failure converted once to UpstreamError."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import HttpProcessingError

from omnigate.errors import UpstreamError
from omnigate.settings import Settings

READ_BUFFER_BYTES = 4 * 1024 * 1024
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
MAX_ERROR_MESSAGE = 500
# A whole answer (or error) larger than this is a broken upstream, not memory to hold.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
# Longer than any retry cap or deadline, so still "too long"; keeps the header clients get short.
MAX_RETRY_AFTER_S = 24 * 3600.0


def new_session(
    settings: Settings, limit_per_host: int = 0, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """A long-lived session: no total timeout (long generations), connect and idle-read timeouts only.

    ``limit=0`` removes aiohttp's hidden 100-connection cap; the gateway's own limits bound concurrency.
    ``resolver`` replaces aiohttp's (the SSRF guard for tenant-supplied hosts).
    """
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=limit_per_host, ttl_dns_cache=300, resolver=resolver
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.upstream_connect_timeout_s, sock_read=settings.upstream_timeout_s
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        read_bufsize=READ_BUFFER_BYTES,
        trust_env=False,
        json_serialize=lambda value: orjson.dumps(value).decode(),
    )


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date."""
    ms = _number(headers.get("retry-after-ms"))
    delay = _delay(ms / 1000.0) if ms is not None else None
    if delay is not None:
        return delay
    raw = headers.get("retry-after")
    if not raw:
        return None
    seconds = _number(raw)
    return _delay(seconds) if seconds is not None else _date_delay(raw, now)


def _number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _delay(seconds: float) -> float | None:
    """A wait the upstream asked for, bounded; None unless finite and non-negative (``inf``, ``nan``)."""
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def _date_delay(raw: str, now: float | None) -> float | None:
    parsed = email.utils.parsedate_to_datetime(raw) if _looks_like_date(raw) else None
    if parsed is None:
        return None
    # A date already past means now.
    return _delay(max(parsed.timestamp() - (time.time() if now is None else now), 0.0))


def _looks_like_date(raw: str) -> bool:
    try:
        return email.utils.parsedate_to_datetime(raw) is not None
    except (TypeError, ValueError, IndexError):
        return False


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Remove every given secret (and any long prefix of it) from text an upstream sent back."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
            text = text.replace(secret[:8], "[redacted]")
    return text


def status_error(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    message: str,
    secrets: Iterable[str | None] = (),
    code: str | None = None,
) -> UpstreamError:
    """The UpstreamError for an upstream HTTP error status, with the status clients should see.

    Upstream 401/403 mean the *provider credential* is wrong, not the caller's gateway key, so they
    become 502 and the upstream's message (which may echo part of the key) is not passed on.
    """
    retry_after = parse_retry_after(headers)
    clean = redact(message, secrets)[:MAX_ERROR_MESSAGE]
    if status in (401, 403):
        error = UpstreamError(
            f"{provider} rejected the provider credential (HTTP {status}); check the project's or gateway's {provider} key",
            status=status,
            provider=provider,
            code="upstream_authentication_failed",
        )
        return error
    retryable = status in RETRYABLE_STATUSES
    error = UpstreamError(
        f"{provider} error (HTTP {status}): {clean}" if clean else f"{provider} returned HTTP {status}",
        status=status,
        retryable=retryable,
        retry_after_s=retry_after,
        provider=provider,
        code=code,
    )
    error.status_code = _client_status(status)
    error.error_type = _client_type(status)
    if retry_after is not None and error.status_code == 429:
        error.headers["retry-after"] = str(max(1, round(retry_after)))
    return error


def _client_status(status: int) -> int:
    if status in (400, 404, 409, 413, 422, 429):
        return status
    if status in (408, 504):
        return 504
    if status in (503, 529):
        return 503
    return 502


def _client_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if 400 <= status < 500 and status not in (408,):
        return "invalid_request_error"
    return "upstream_error"


def transport_error(provider: str, exc: BaseException, *, started: bool = False) -> UpstreamError:
    """Convert an aiohttp/timeout failure; retryable only before any response byte was relayed."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        error = UpstreamError(
            f"{provider} timed out", provider=provider, retryable=not started, code="upstream_timeout"
        )
        error.status_code = 504
        return error
    kind = type(exc).__name__
    return UpstreamError(
        f"{provider} connection failed ({kind})",
        provider=provider,
        retryable=not started,
        code="upstream_unavailable",
    )


TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, HttpProcessingError)


async def error_from_response(
    provider: str, response: aiohttp.ClientResponse, secrets: Iterable[str | None] = ()
) -> UpstreamError:
    """Read an error response's body and build its UpstreamError (message from the provider's JSON)."""
    try:
        body = await read_at_most(response, MAX_ERROR_BODY_BYTES) or b""
    except TRANSPORT_ERRORS:
        body = b""
    error = status_error(provider, response.status, response.headers, error_message(body), secrets)
    detail = _error_object(body)
    if response.status == 429 and detail is not None and detail.get("code") == "insufficient_quota":
        _quota_exhausted(error)
    if error.retry_after_s is None:
        error.retry_after_s = _retry_delay(detail)
        if error.retry_after_s is not None and error.status_code == 429:
            error.headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    return error


def retry_delay_from_body(body: bytes) -> float | None:
    """Gemini puts its wait in the body: ``error.details[].retryDelay`` of a google.rpc.RetryInfo, e.g. "20s"."""
    return _retry_delay(_error_object(body))


def _retry_delay(error: dict[str, Any] | None) -> float | None:
    """The first ``details[].retryDelay`` of an error object, as a wait (None if absent or not sane)."""
    details = error.get("details") if error is not None else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            seconds = _number(delay[:-1])
            return _delay(seconds) if seconds is not None else None
    return None


QUOTA_EXHAUSTED = "upstream_insufficient_quota"


def _quota_exhausted(error: UpstreamError) -> None:
    """OpenAI's 429 ``insufficient_quota``: the provider account's credit is spent, which no wait mends.
    Still retryable in the fallback sense (another provider may answer; the breaker counts it), but the
    retry policy does not try the same target again, and clients are told not to retry."""
    error.code = QUOTA_EXHAUSTED
    error.error_type = "insufficient_quota"
    error.headers["x-should-retry"] = "false"


def _error_object(body: bytes) -> dict[str, Any] | None:
    """An error body's ``error`` object (OpenAI, Anthropic and Gemini each nest one), if it has one."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def error_message(body: bytes) -> str:
    """The human message of an OpenAI-, Anthropic- or Gemini-style error body (or the text itself)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return body.decode("utf-8", "replace").strip()


def bad_response(provider: str, what: str) -> UpstreamError:
    """A 2xx answer the gateway cannot use (malformed, or past its size bound): not retryable."""
    return UpstreamError(
        f"{provider} sent a malformed response ({what})",
        provider=provider,
        retryable=False,
        code="upstream_bad_response",
    )


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be larger than ``limit`` bytes (decoded)."""
    length = response.content_length
    if length is not None and length > limit:
        return None
    if length is not None and "content-encoding" not in response.headers:
        return await response.read()  # exactly ``length`` bytes
    pieces, size = [], 0
    async for piece in response.content.iter_any():  # chunked, or compressed: count what it decodes to
        size += len(piece)
        if size > limit:
            return None
        pieces.append(piece)
    return b"".join(pieces)


async def read_body(provider: str, response: aiohttp.ClientResponse) -> bytes:
    """A whole non-streamed 2xx body; the connection goes back to the pool either way (closed when
    the body was not read to its end)."""
    try:
        body = await read_at_most(response, MAX_BODY_BYTES)
    except TRANSPORT_ERRORS as exc:
        raise transport_error(provider, exc) from None
    finally:
        response.release()
    if body is None:
        raise bad_response(provider, f"an answer larger than {MAX_BODY_BYTES} bytes")
    return body


async def post(
    session: aiohttp.ClientSession,
    provider: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json_body: Any,
    secrets: Iterable[str | None] = (),
) -> aiohttp.ClientResponse:
    """POST without following redirects; returns the open response (2xx) or raises UpstreamError."""
    try:
        response = await session.post(
            url,
            data=orjson.dumps(json_body),
            headers={**headers, "content-type": "application/json"},
            allow_redirects=False,
        )
    except TRANSPORT_ERRORS as exc:
        raise transport_error(provider, exc) from None
    if response.status >= 300:
        try:
            if 300 <= response.status < 400:
                raise UpstreamError(
                    f"{provider} answered with a redirect (HTTP {response.status}), which is not followed",
                    status=response.status,
                    provider=provider,
                    code="upstream_redirect",
                )
            raise await error_from_response(provider, response, secrets)
        finally:
            response.release()
    return response
