"""Circuit breaker state on the SharedState protocol: one read per admission, writes only on transitions.

Per breaker key ``K`` (``provider:project``), under ``cb:K:``:

- ``fail``    consecutive failures (a success resets it);
- ``open``    present while the breaker is open; its TTL is the reset timeout;
- ``tripped`` present from the moment the breaker opens until a probe succeeds, so "tripped but no
  longer open" is half-open;
- ``probe``   half-open probes in flight, reserved against CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS.

Every process using the same state (Redis) sees the same breaker. A request that finds the breaker
closed costs one round trip (a zero-amount ``reserve``, which reads values and TTLs atomically).
"""

from __future__ import annotations

import attrs

from omnigate.state.base import Counter, SharedState

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# Bookkeeping keys outlive any sane outage, yet do not litter the state forever.
STATE_TTL_S = 24 * 3600.0
MIN_OPEN_S = 0.001  # a reset timeout of 0 still needs a positive TTL
MAX_CACHED_KEYS = 10_000


@attrs.frozen
class Admission:
    """What one request found: the state, whether it may go upstream, and whether it is a probe."""

    key: str
    state: str
    allowed: bool
    probe: bool = False
    failures: int = 0
    retry_after_s: float | None = None


class BreakerStore:
    def __init__(
        self,
        state: SharedState,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        half_open_max_calls: int,
        probe_ttl_s: float,
        exclusive: bool = False,
    ) -> None:
        self.state = state
        # Exclusive: nothing but this store writes the state (an in-process breaker), so a key seen closed
        # with no failures stays so until this store records a failure, and admit needs no read for it.
        self.exclusive = exclusive
        self._healthy: dict[str, Admission] = {}
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = max(reset_timeout_s, MIN_OPEN_S)
        self.half_open_max_calls = half_open_max_calls
        self.probe_ttl_s = probe_ttl_s
        self._read_counters: dict[str, tuple[Counter, ...]] = {}  # the per-request read, built once per key

    def _reads(self, key: str) -> tuple[Counter, ...]:
        reads = self._read_counters.get(key)
        if reads is None:
            if len(self._read_counters) >= MAX_CACHED_KEYS:
                self._read_counters.clear()
            reads = tuple(Counter(f"cb:{key}:{name}", 0) for name in ("open", "tripped", "fail"))
            self._read_counters[key] = reads
        return reads

    async def admit(self, key: str) -> Admission:
        healthy = self._healthy.get(key)
        if healthy is not None:
            return healthy
        seen = await self.state.reserve(self._reads(key))
        is_open, tripped, failures = seen.values
        if is_open > 0:
            ttl_ms = seen.ttls_ms[0]
            remaining = ttl_ms / 1000 if ttl_ms > 0 else self.reset_timeout_s
            return Admission(key, OPEN, False, failures=failures, retry_after_s=remaining)
        if tripped <= 0:
            admission = Admission(key, CLOSED, True, failures=failures)
            if self.exclusive and failures == 0:
                if len(self._healthy) >= MAX_CACHED_KEYS:
                    self._healthy.clear()
                self._healthy[key] = admission
            return admission
        probe = await self.state.reserve(
            [Counter(f"cb:{key}:probe", 1, limit=self.half_open_max_calls, ttl_s=self.probe_ttl_s)]
        )
        if not probe.admitted:
            return Admission(key, HALF_OPEN, False, failures=failures, retry_after_s=1.0)
        return Admission(key, HALF_OPEN, True, probe=True, failures=failures)

    def success_changes_state(self, admission: Admission) -> bool:
        """Whether :meth:`record_success` would write anything (most successes change nothing).

        Failures count while consecutive by completion: a success admitted before a failure landed
        still resets it. Exclusive stores know locally that failures may exist (the key left the
        healthy set); shared ones only from what this admission read, to spare a write per request.
        """
        return (
            admission.probe
            or admission.failures > 0
            or (self.exclusive and admission.key not in self._healthy)
        )

    async def record_success(self, admission: Admission) -> str | None:
        """A probe's success closes the breaker; a success after failures resets the count."""
        key = admission.key
        if admission.probe:
            await self.state.delete(f"cb:{key}:tripped")
            await self.state.delete(f"cb:{key}:fail")
            return CLOSED
        if self.success_changes_state(admission):
            await self.state.delete(f"cb:{key}:fail")
        return None

    async def record_failure(self, admission: Admission) -> str | None:
        """Counts the failure; opens (again) at the threshold, or at once when a probe failed."""
        key = admission.key
        self._healthy.pop(key, None)
        (failures,) = await self.state.add([Counter(f"cb:{key}:fail", 1, ttl_s=STATE_TTL_S)])
        if admission.probe or failures >= self.failure_threshold:
            await self.state.set(f"cb:{key}:open", b"1", ttl_s=self.reset_timeout_s)
            await self.state.set(f"cb:{key}:tripped", b"1", ttl_s=STATE_TTL_S)
            return OPEN
        return None

    async def release_probe(self, admission: Admission) -> None:
        if admission.probe:
            # The TTL only matters if the counter expired meanwhile: a -1 must not live forever.
            await self.state.add([Counter(f"cb:{admission.key}:probe", -1, ttl_s=self.probe_ttl_s)])
