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
    process that revokes a key (or hears of it) calls :meth:`invalidate` and stops it at once. An entry
    used in the second half of its life is reloaded in the background, so a key in use never makes
    its requests wait for the store (on SQLite that wait can queue behind the usage writer), and no
    entry is ever served past ``ttl_s``.
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
        # key hash -> (expires at, reload from, value)
        self._entries: OrderedDict[str, tuple[float, float, P | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[P | None]] = {}
        self._refreshes: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by invalidate(): a load begun before it must not store its value

    async def get(self, key_hash: str) -> P | None:
        entry = self._entries.get(key_hash)
        now = self._clock()
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(key_hash)
            if entry[1] <= now and key_hash not in self._loading:
                self._refresh(key_hash)
            return entry[2]
        pending = self._loading.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key_hash, self._begin(key_hash))

    def _begin(self, key_hash: str) -> asyncio.Future[P | None]:
        future: asyncio.Future[P | None] = asyncio.get_running_loop().create_future()
        self._loading[key_hash] = future
        return future

    async def _load(self, key_hash: str, future: asyncio.Future[P | None]) -> P | None:
        generation = self._generation
        try:
            value = await self._loader(key_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here so a lone loader does not warn
            raise
        finally:
            self._loading.pop(key_hash, None)
        future.set_result(value)
        if generation == self._generation:
            self._store(key_hash, value)
        return value

    def _refresh(self, key_hash: str) -> None:
        task = asyncio.get_running_loop().create_task(self._refresh_quietly(key_hash, self._begin(key_hash)))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh_quietly(self, key_hash: str, future: asyncio.Future[P | None]) -> None:
        try:
            await self._load(key_hash, future)
        except Exception:
            # The entry stays until it expires; the request that finds it expired loads it and sees
            # the error. No further background attempt for it meanwhile.
            entry = self._entries.get(key_hash)
            if entry is not None:
                self._entries[key_hash] = (entry[0], entry[0], entry[2])

    def _store(self, key_hash: str, value: P | None) -> None:
        now = self._clock()
        self._entries[key_hash] = (now + self._ttl_s, now + self._ttl_s / 2, value)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key_hash: str | None = None) -> None:
        """Forget one key (or all keys when ``key_hash`` is None); loads under way keep their value to themselves."""
        self._generation += 1
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    def close(self) -> None:
        """Stop background reloads (at shutdown, before the store goes away)."""
        for task in self._refreshes:
            task.cancel()

    def __len__(self) -> int:
        return len(self._entries)
