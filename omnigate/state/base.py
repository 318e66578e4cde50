"""The SharedState protocol, its value types and the one error callers see when the backend is down."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import attrs

DEFAULT_PREFIX = "omnigate:"

# Remaining-TTL markers, the same values Redis PTTL returns.
TTL_NONE = -1
TTL_MISSING = -2


class StateUnavailableError(Exception):
    """The shared-state backend could not be reached (connection refused, lost, or timed out)."""


@attrs.define
class Counter:
    """One integer counter touched by reserve()/add(); the key is relative to the state's prefix.

    Treat it as immutable (``attrs.evolve`` for a changed copy); it is not frozen only because a
    request builds a dozen and frozen attrs classes cost three times as much to construct.
    """

    key: str
    amount: int
    limit: int | None = None
    ttl_s: float | None = None
    guard: str | None = None
    """A key that must exist for this counter's value to be whole (a marker written when the counter was
    rebuilt): ``reserve`` reports the counters whose guard is missing. Guards are only read."""


@attrs.frozen
class Reservation:
    """Outcome of reserve(): whether every counter fitted, and each counter's value and TTL after it."""

    admitted: bool
    refused: int | None
    values: tuple[int, ...]
    ttls_ms: tuple[int, ...]
    unguarded: tuple[int, ...] = ()
    """Indices of the counters whose guard key does not exist (as the operation leaves the state)."""


class SharedState(Protocol):
    """Key/value, counters and pub/sub shared by every gateway process using the same backend."""

    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int: ...

    async def reserve(self, items: Sequence[Counter]) -> Reservation:
        """Add every amount if every counter stays within its limit, else nothing.

        A caller cancelled while it waits leaves nothing reserved: the backend drops the operation or,
        when it already ran, gives the reservation back.
        """
        ...

    async def add(self, items: Sequence[Counter]) -> tuple[int, ...]:
        """Unconditional adds; the counters' values after them."""
        ...

    def add_later(self, items: Sequence[Counter], on_error: Callable[[Exception], None]) -> None:
        """Unconditional adds nobody waits for (a settlement once the answer is out): queued at once,
        in order with every later operation, and possibly held briefly to travel with the next one.
        A failure goes to ``on_error``; nothing is raised."""
        ...

    async def get_counters(self, keys: Sequence[str]) -> tuple[int, ...]: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channel: str, callback: Callable[[bytes], None]) -> None: ...

    async def ping(self) -> None: ...


def ttls_to_ms(ttls_s: Iterable[float | None]) -> list[int | None]:
    """Convert TTLs in seconds to whole milliseconds (at least 1); reject zero and negative TTLs."""
    ttls_ms: list[int | None] = []
    for ttl_s in ttls_s:
        if ttl_s is None:
            ttls_ms.append(None)
        elif ttl_s > 0:
            ttls_ms.append(round(ttl_s * 1000) or 1)  # a positive TTL rounding to 0 ms keeps 1
        else:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
    return ttls_ms


def ttl_to_ms(ttl_s: float | None) -> int | None:
    """One TTL in seconds as whole milliseconds (see :func:`ttls_to_ms`)."""
    return ttls_to_ms((ttl_s,))[0]


def check_counters(items: Sequence[Counter]) -> list[int | None]:
    """Validate counters before touching the backend, so a bad item never causes a partial update;
    their TTLs in milliseconds (converted in one call: a request converts about ten)."""
    for item in items:
        if type(item.amount) is not int:  # bool is an int subclass, and not an amount
            raise TypeError(f"Counter.amount must be an int, got {item.amount!r}")
        if item.limit is not None and type(item.limit) is not int:
            raise TypeError(f"Counter.limit must be an int or None, got {item.limit!r}")
    return ttls_to_ms([item.ttl_s for item in items])
