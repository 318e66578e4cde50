"""In-process cache of API key → principal, so an authenticated request makes no database round trip."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

P = TypeVar("P")

Loader = Callable[[str], Awaitable["P | None"]]


class KeyCache(Generic[P]):
    """Caches lookups by key hash for ``ttl_s`` (misses too), bounded, one load per hash at a time.

    A revoked key therefore stops working in other processes within ``ttl_s`` at the latest; a
    process that revokes a key (or hears of it) calls :meth:`invalidate` and stops it at once.
    """

    def __init__(
        self,
        loader: Callable[[str], Awaitable[P | None]],
        ttl_s: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, P | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[P | None]] = {}

    async def get(self, key_hash: str) -> P | None:
        entry = self._entries.get(key_hash)
        now = self._clock()
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(key_hash)
            return entry[1]
        pending = self._loading.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[P | None] = asyncio.get_running_loop().create_future()
        self._loading[key_hash] = future
        try:
            value = await self._loader(key_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here so a lone loader does not warn
            raise
        finally:
            self._loading.pop(key_hash, None)
        future.set_result(value)
        self._store(key_hash, value)
        return value

    def _store(self, key_hash: str, value: P | None) -> None:
        self._entries[key_hash] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key_hash: str | None = None) -> None:
        """Forget one key (or all keys when ``key_hash`` is None)."""
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    def __len__(self) -> int:
        return len(self._entries)
