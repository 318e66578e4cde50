"""Shared state (counters, cache entries, pub/sub) across gateway processes: in-process or Redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from omnigate.state.base import (
    DEFAULT_PREFIX,
    TTL_MISSING,
    TTL_NONE,
    Counter,
    Reservation,
    SharedState,
    StateUnavailableError,
)
from omnigate.state.memory import MemoryState
from omnigate.state.redis import RedisState

__all__ = [
    "DEFAULT_PREFIX",
    "TTL_MISSING",
    "TTL_NONE",
    "Counter",
    "MemoryState",
    "RedisState",
    "Reservation",
    "SharedState",
    "StateUnavailableError",
    "open_state",
]


@contextlib.asynccontextmanager
async def open_state(redis_url: str | None, prefix: str = DEFAULT_PREFIX) -> AsyncIterator[SharedState]:
    """Yield a MemoryState when redis_url is None, else an open RedisState closed on exit.

    Enter it in the task that owns the app's lifetime (the Starlette lifespan); request tasks share it.
    Opening does not require Redis to be up: operations raise StateUnavailableError while it is down
    and the pub/sub listener reconnects by itself. Call ``await state.ping()`` to fail fast instead.
    """
    if redis_url is None:
        yield MemoryState(prefix)
        return
    async with RedisState(redis_url, prefix) as state:
        yield state
