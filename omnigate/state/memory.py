"""In-process SharedState: dicts plus an injectable monotonic clock, for single-process deployments."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

from omnigate.state.base import (
    DEFAULT_PREFIX,
    TTL_MISSING,
    TTL_NONE,
    Counter,
    Reservation,
    check_counters,
    ttl_to_ms,
)

logger = logging.getLogger(__name__)

_INTEGER = re.compile(rb"-?[0-9]+")


class MemoryState:
    """SharedState held in this process; no method awaits, so every operation is atomic."""

    name: str = "memory"

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_s: float = 30.0,
    ) -> None:
        self.prefix = prefix
        self._clock = clock
        self._sweep_interval_s = sweep_interval_s
        self._values: dict[str, bytes | int] = {}
        self._expires: dict[str, float] = {}  # only keys that have an expiry
        self._next_sweep = clock() + sweep_interval_s
        self._callbacks: dict[str, list[Callable[[bytes], None]]] = {}

    @property
    def size(self) -> int:
        """Number of keys currently stored (expired keys not yet purged included)."""
        return len(self._values)

    # -- expiry ----------------------------------------------------------------------------------

    def _now(self) -> float:
        """Read the clock, purging every expired key if the sweep interval has passed."""
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval_s
            for key in [k for k, at in self._expires.items() if at <= now]:
                del self._expires[key]
                self._values.pop(key, None)
        return now

    def _lookup(self, key: str, now: float) -> bytes | int | None:
        """Return the live value of a full key, dropping it first if it has expired."""
        at = self._expires.get(key)
        if at is not None and at <= now:
            del self._expires[key]
            self._values.pop(key, None)
            return None
        return self._values.get(key)

    def _pttl(self, key: str, now: float) -> int:
        if self._lookup(key, now) is None:
            return TTL_MISSING
        at = self._expires.get(key)
        return TTL_NONE if at is None else max(0, round((at - now) * 1000))

    def _int(self, key: str, now: float) -> int:
        value = self._lookup(key, now)
        if value is None:
            return 0
        if isinstance(value, int):
            return value
        if not _INTEGER.fullmatch(value):
            raise ValueError(f"value at {key!r} is not an integer")
        return int(value)

    # -- key/value -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value = self._lookup(self.prefix + key, self._now())
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        ttl_ms = ttl_to_ms(ttl_s)
        now = self._now()
        full = self.prefix + key
        self._values[full] = bytes(value)
        if ttl_ms is None:
            self._expires.pop(full, None)
        else:
            self._expires[full] = now + ttl_ms / 1000

    async def delete(self, key: str) -> None:
        full = self.prefix + key
        self._values.pop(full, None)
        self._expires.pop(full, None)

    # -- counters --------------------------------------------------------------------------------

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        return (await self.add([Counter(key, amount, None, ttl_s)]))[0]

    async def reserve(self, items: Sequence[Counter]) -> Reservation:
        ttls_ms = check_counters(items)
        now = self._now()
        keys = [self.prefix + item.key for item in items]
        stored = {key: self._int(key, now) for key in keys}
        pending = dict(stored)
        refused: int | None = None
        for index, (item, key) in enumerate(zip(items, keys, strict=True)):
            if (
                refused is None
                and item.amount > 0
                and item.limit is not None
                and pending[key] + item.amount > item.limit
            ):
                refused = index
            pending[key] += item.amount
        if refused is not None:
            ttls = tuple(self._pttl(key, now) for key in keys)
            values = tuple(stored[key] for key in keys)
            return Reservation(False, refused, values, ttls, self._unguarded(items, now))
        values = self._apply(items, keys, ttls_ms, now)
        ttls = tuple(self._pttl(key, now) for key in keys)
        return Reservation(True, None, values, ttls, self._unguarded(items, now))

    def _unguarded(self, items: Sequence[Counter], now: float) -> tuple[int, ...]:
        return tuple(
            index
            for index, item in enumerate(items)
            if item.guard is not None and self._lookup(self.prefix + item.guard, now) is None
        )

    async def add(self, items: Sequence[Counter]) -> tuple[int, ...]:
        return self._add(items)

    def add_later(self, items: Sequence[Counter], on_error: Callable[[Exception], None]) -> None:
        try:
            self._add(items)  # in process there is nothing to wait for: applied now
        except Exception as error:
            on_error(error)

    def _add(self, items: Sequence[Counter]) -> tuple[int, ...]:
        ttls_ms = check_counters(items)
        now = self._now()
        keys = [self.prefix + item.key for item in items]
        for key in keys:
            self._int(key, now)  # validate every key before changing any
        return self._apply(items, keys, ttls_ms, now)

    def _apply(
        self, items: Sequence[Counter], keys: list[str], ttls_ms: list[int | None], now: float
    ) -> tuple[int, ...]:
        """Add every amount; a zero amount creates nothing. A TTL is set only where none exists."""
        values: list[int] = []
        for item, key, ttl_ms in zip(items, keys, ttls_ms, strict=True):
            value = self._int(key, now)
            if item.amount != 0:
                value += item.amount
                self._values[key] = value
                if ttl_ms is not None and key not in self._expires:
                    self._expires[key] = now + ttl_ms / 1000
            values.append(value)
        return tuple(values)

    async def get_counters(self, keys: Sequence[str]) -> tuple[int, ...]:
        now = self._now()
        return tuple(self._int(self.prefix + key, now) for key in keys)

    # -- pub/sub and health ----------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        for callback in list(self._callbacks.get(self.prefix + channel, ())):
            try:
                callback(message)
            except Exception:
                logger.exception("state subscriber callback failed on channel %r", channel)

    def subscribe(self, channel: str, callback: Callable[[bytes], None]) -> None:
        self._callbacks.setdefault(self.prefix + channel, []).append(callback)

    async def ping(self) -> None:
        return None
