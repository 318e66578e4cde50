"""Circuit breaker per provider:project: stop calling an upstream that keeps failing, probe it, recover."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from omnigate import hookimpl
from omnigate.chat.models import ChatStream
from omnigate.errors import UpstreamError
from omnigate.plugin.interfaces import Call, CallNext, CallOutcome, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies.circuit_breaker_store import CLOSED, OPEN, Admission, BreakerStore
from omnigate.policies.retry import prime_stream
from omnigate.settings import Settings
from omnigate.state.base import StateUnavailableError
from omnigate.state.memory import MemoryState
from omnigate.usage.records import STATUS_ERROR, STATUS_OK, STATUS_TRUNCATED

logger = logging.getLogger("omnigate.policies.circuit_breaker")

WARN_EVERY_S = 30.0
MAX_TRACKED_KEYS = 100_000


class CircuitOpenError(UpstreamError):
    """The breaker for this provider and project is open: the upstream was not called.

    It is retryable in the fallback sense (the next fallback model is tried at once); as the final
    answer it is a 503 with ``code: circuit_open`` and a ``retry-after`` header.
    """

    status_code = 503
    error_type = "service_unavailable"
    default_code = "circuit_open"


def breaker_key(call: Call) -> str:
    project = getattr(call.principal, "project_id", None) or "-"
    return f"{call.target.provider}:{project}"


def circuit_open_error(provider: str, admission: Admission) -> CircuitOpenError:
    wait = admission.retry_after_s or 1.0
    if admission.state == OPEN:
        message = (
            f"{provider} has failed repeatedly for this project; its circuit breaker is open and "
            f"the next attempt is allowed in about {math.ceil(wait)}s"
        )
    else:
        message = f"{provider} is being probed after repeated failures; try again shortly"
    return CircuitOpenError(
        message,
        retryable=True,
        retry_after_s=wait,
        provider=provider,
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


def is_failure(outcome: CallOutcome) -> bool | None:
    """A finished stream's verdict: True failed, False succeeded, None says nothing about the upstream."""
    if outcome.status == STATUS_OK:
        return False
    if outcome.status == STATUS_TRUNCATED:
        return True
    if outcome.status == STATUS_ERROR and outcome.http_status >= 500:
        return True
    return None  # cancelled by the client, or a client error


class CircuitBreakerPolicy:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after the reset
    timeout (``half_open_max_calls`` probes) → closed when a probe succeeds, open again when it fails.

    Failures are retryable upstream errors (after the retry policy inside has given up) and streams
    that break after their headers; client errors and client disconnects count neither way. An open
    breaker raises :class:`CircuitOpenError` without touching the upstream. When the state backend is
    unreachable the breaker lets requests through (it protects upstreams, not money).
    """

    def __init__(self, store: BreakerStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._states: dict[str, str] = {}
        self._warned_at = -math.inf

    def states(self) -> dict[str, str]:
        """``"provider:project"`` → ``"closed"``, ``"open"`` or ``"half_open"``, as this process last
        saw or set it (for metrics; with the Redis backend other processes may know newer states)."""
        return dict(self._states)

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        key = breaker_key(call)
        try:
            admission = await self.store.admit(key)
        except StateUnavailableError as exc:
            self._warn(exc)
            return await call_next(call)
        self._note(key, admission.state)
        if not admission.allowed:
            raise circuit_open_error(call.target.provider, admission)
        if admission.probe:
            call.on_finish(self._release_probe(admission))
        try:
            result = await call_next(call)
            if isinstance(result, ChatStream):
                result = await prime_stream(result)
        except UpstreamError as error:
            if error.retryable:
                await self._settle(admission, failed=True)
            raise
        if isinstance(result, ChatStream):
            call.on_finish(self._judge_stream(admission))
        elif self.store.success_changes_state(admission):
            await self._settle(admission, failed=False)
        return result

    def _judge_stream(self, admission: Admission) -> Callable[[CallOutcome], Awaitable[None] | None]:
        # A plain finalizer: a healthy stream's success schedules nothing.
        def judge(outcome: CallOutcome) -> Awaitable[None] | None:
            verdict = is_failure(outcome)
            if verdict is None or not (verdict or self.store.success_changes_state(admission)):
                return None
            return self._settle(admission, failed=verdict)

        return judge

    def _release_probe(self, admission: Admission) -> Callable[[CallOutcome], Awaitable[None]]:
        async def release(outcome: CallOutcome) -> None:
            try:
                await self.store.release_probe(admission)
            except StateUnavailableError as exc:
                self._warn(exc)

        return release

    async def _settle(self, admission: Admission, *, failed: bool) -> None:
        try:
            if failed:
                changed = await self.store.record_failure(admission)
            else:
                changed = await self.store.record_success(admission)
        except StateUnavailableError as exc:
            self._warn(exc)
            return
        if changed == OPEN and self._states.get(admission.key) != OPEN:
            logger.warning("circuit breaker %s opened", admission.key)
        elif changed == CLOSED:
            logger.info("circuit breaker %s closed after a successful probe", admission.key)
        if changed is not None:
            self._note(admission.key, changed)

    def _note(self, key: str, state: str) -> None:
        if key not in self._states and len(self._states) >= MAX_TRACKED_KEYS:
            self._states.clear()
        self._states[key] = state

    def _warn(self, exc: Exception) -> None:
        now = self._clock()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning("circuit breaker state unavailable, letting requests through: %s", exc)


def build(context: PluginContext) -> CircuitBreakerPolicy:
    """CIRCUIT_BREAKER_BACKEND=redis shares the gateway's state (every process sees one breaker);
    ``memory`` keeps breakers in this process even when REDIS_URL is set."""
    settings = context.settings
    exclusive = settings.circuit_breaker_backend != "redis"
    state = MemoryState(prefix=settings.state_prefix) if exclusive else context.state
    store = BreakerStore(
        state,
        failure_threshold=settings.circuit_breaker_failure_threshold,
        reset_timeout_s=settings.circuit_breaker_reset_timeout_s,
        half_open_max_calls=settings.circuit_breaker_half_open_max_calls,
        probe_ttl_s=settings.circuit_breaker_reset_timeout_s + settings.request_deadline_s,
        exclusive=exclusive,
    )
    return CircuitBreakerPolicy(store)


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("circuit_breaker", build)
