"""In-process loading cache with a TTL: API key → principal and (project, provider) → credential, no store round trip per request."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")


class LoadingCache(Generic[K, P]):
    """Caches lookups for ``ttl_s`` (misses too), bounded (LRU), one load per key at a time.

    A revoked key therefore stops working in other processes within ``ttl_s`` at the latest; a
    process that revokes a key (or hears of it) calls :meth:`invalidate` and stops it at once. An entry
    used in the second half of its life is reloaded in the background, so a key in use never makes
    its requests wait for the store (on SQLite that wait can queue behind the usage writer), and no
    entry is ever served past ``ttl_s``.
    """

    def __init__(
        self,
        loader: Callable[[K], Awaitable[P | None]],
        ttl_s: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        # key -> (expires at, reload from, value)
        self._entries: OrderedDict[K, tuple[float, float, P | None]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[P | None]] = {}
        self._refreshes: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by invalidate(): a load begun before it must not store its value

    async def get(self, key: K) -> P | None:
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(key)
            if entry[1] <= now and key not in self._loading:
                self._refresh(key)
            return entry[2]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, self._begin(key))

    def _begin(self, key: K) -> asyncio.Future[P | None]:
        future: asyncio.Future[P | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return future

    async def _load(self, key: K, future: asyncio.Future[P | None]) -> P | None:
        generation = self._generation
        try:
            value = await self._loader(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here so a lone loader does not warn
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(value)
        if generation == self._generation:
            self._store(key, value)
        return value

    def _refresh(self, key: K) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh_quietly(key, self._begin(key)))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh_quietly(self, key: K, future: asyncio.Future[P | None]) -> None:
        try:
            await self._load(key, future)
        except Exception:
            # The entry stays until it expires; the request that finds it expired loads it and sees
            # the error. No further background attempt for it meanwhile.
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (entry[0], entry[0], entry[2])

    def _store(self, key: K, value: P | None) -> None:
        now = self._clock()
        self._entries[key] = (now + self._ttl_s, now + self._ttl_s / 2, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: K | None = None) -> None:
        """Forget one key (or all keys when ``key`` is None); loads under way keep their value to themselves."""
        self._generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def invalidate_matching(self, matches: Callable[[K], bool]) -> None:
        """Forget every key ``matches`` accepts, like :meth:`invalidate`."""
        self._generation += 1
        for key in [k for k in self._entries if matches(k)]:
            del self._entries[key]

    def close(self) -> None:
        """Stop background reloads (at shutdown, before the store goes away)."""
        for task in self._refreshes:
            task.cancel()

    def __len__(self) -> int:
        return len(self._entries)
