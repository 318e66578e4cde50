"""Retry policy: full-jitter exponential backoff on retryable upstream errors, within the request's bounds."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs

from omnigate import hookimpl
from omnigate.chat.models import ChatStream, StreamChunk
from omnigate.errors import UpstreamError
from omnigate.gateway.upstream import QUOTA_EXHAUSTED
from omnigate.plugin.interfaces import Call, CallNext, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.settings import Settings

logger = logging.getLogger("omnigate.policies.retry")

MAX_EXPONENT = 32  # 2**32 × any sane base delay is far beyond every cap


@attrs.define
class RetryPolicy:
    """Retries one target while its error is retryable, the request's deadline and attempt cap allow it.

    ``max_attempts`` counts this target's attempts, the first included; ``call.attempts`` (every
    upstream attempt of the request, across fallbacks) must stay under ``max_attempts_per_request``.
    A wait the upstream asks for (``Retry-After``) is honoured when it fits under ``max_delay_s``;
    a longer one is not slept at all: the error goes up at once (to the fallback policy, or to the
    client with the upstream's status and a ``retry-after`` header). ``sleep``, ``clock`` and
    ``random`` are injectable so tests never really wait.
    """

    max_attempts: int
    base_delay_s: float
    max_delay_s: float
    max_attempts_per_request: int
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = random.random

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.retry_max_attempts,
            base_delay_s=settings.retry_base_delay_ms / 1000,
            max_delay_s=settings.retry_max_delay_ms / 1000,
            max_attempts_per_request=settings.max_attempts_per_request,
        )

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        tries = 0
        while True:
            tries += 1
            try:
                result = await call_next(call)
                if isinstance(result, ChatStream):
                    result = await prime_stream(result)
                return result
            except UpstreamError as error:
                delay = self.delay_before_retry(error, tries, call)
                if delay is None:
                    raise
                logger.info(
                    "retrying %s/%s after %s (attempt %d of %d) in %.2fs",
                    call.target.provider,
                    call.target.model,
                    error.code,
                    tries + 1,
                    self.max_attempts,
                    delay,
                )
            await self.sleep(delay)

    def backoff(self, retry_index: int) -> float:
        """Full jitter: uniform in [0, min(cap, base × 2^retry_index))."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retry_index, MAX_EXPONENT))
        return self.random() * ceiling

    def delay_before_retry(self, error: UpstreamError, tries: int, call: Call) -> float | None:
        """Seconds to wait before the next attempt, or None when the error must go up now."""
        if not error.retryable or error.code == QUOTA_EXHAUSTED:
            return None
        requested = _requested_wait(error)
        if requested is not None:
            delay = requested
            if delay > self.max_delay_s:
                _expose_retry_after(error)
                return None
        else:
            delay = self.backoff(tries - 1)
        if (
            tries >= self.max_attempts
            or call.attempts >= self.max_attempts_per_request
            or self.clock() + delay >= call.deadline
        ):
            _expose_retry_after(error)
            return None
        return delay


def _requested_wait(error: UpstreamError) -> float | None:
    """The upstream's wait; one that is not finite and non-negative (a provider's own parsing) is none."""
    wait = error.retry_after_s
    return wait if wait is not None and math.isfinite(wait) and wait >= 0 else None


def _expose_retry_after(error: UpstreamError) -> None:
    """The client gets the upstream's wait when we give up (429s carry it already)."""
    wait = _requested_wait(error)
    if wait is not None and "retry-after" not in error.headers:
        error.headers["retry-after"] = str(max(1, math.ceil(wait)))


# Failures of the transport or of the body's framing, not answers: another attempt may well succeed.
TRANSIENT_BEFORE_FIRST_CHUNK = frozenset(
    {"upstream_unavailable", "upstream_timeout", "upstream_stream_truncated"}
)


class _PrimedChunks:
    """A stream's iterator with its first chunk already read (the rest still comes from upstream)."""

    def __init__(self, first: StreamChunk, rest: AsyncIterator[StreamChunk]) -> None:
        self._first: StreamChunk | None = first
        self._rest = rest

    def __aiter__(self) -> _PrimedChunks:
        return self

    def __anext__(self) -> Awaitable[StreamChunk]:
        # After the first chunk, the underlying iterator's own awaitable: no extra frame per chunk.
        if self._first is not None:
            first, self._first = self._first, None
            return _ready(first)
        return self._rest.__anext__()


async def _ready(chunk: StreamChunk) -> StreamChunk:
    return chunk


async def prime_stream(stream: ChatStream) -> ChatStream:
    """Read a stream's first chunk before it is returned to the client path.

    Nothing reaches the client before the first chunk (dispatch sends headers with it), so an upstream
    that fails between its response headers and its first event can still be retried or failed over:
    a broken connection, a timeout or a body ended early is then as retryable as a refused connection
    (readers mark failures after the response headers as not retryable, as they are once relayed), and
    so is Anthropic's ``overloaded_error``. Idempotent; the stream object is kept (providers update its
    id and model while it runs). A failure closes the stream and raises.
    """
    if isinstance(stream.chunks, _PrimedChunks):
        return stream
    iterator = aiter(stream)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return stream
    except UpstreamError as error:
        await stream.aclose()
        if error.code in TRANSIENT_BEFORE_FIRST_CHUNK:
            error.retryable = True
        raise
    except BaseException:
        await stream.aclose()
        raise
    stream.chunks = _PrimedChunks(first, iterator)
    return stream


def build(context: PluginContext) -> RetryPolicy | None:
    """Disabled (None) when RETRY_MAX_ATTEMPTS is 1: a single attempt needs no policy."""
    if context.settings.retry_max_attempts <= 1:
        return None
    return RetryPolicy.from_settings(context.settings)


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("retry", build)
