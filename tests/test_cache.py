"""The loading cache: TTL bound, one load at a time, background reload of keys in use, invalidation races."""

from __future__ import annotations

import asyncio

import pytest

from omnigate.cache import LoadingCache


class Store:
    """A loader whose answers and pace the test controls."""

    def __init__(self) -> None:
        self.value = "v1"
        self.loads = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def load(self, key_hash: str) -> str | None:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("store down")
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_key_in_use_is_reloaded_in_the_background_and_never_served_past_its_ttl() -> None:
    store, clock = Store(), Clock()
    cache = LoadingCache(store.load, ttl_s=10, clock=clock)
    assert await cache.get("h") == "v1" and store.loads == 1
    clock.now += 4  # first half of its life: served from the cache, nothing reloaded
    assert await cache.get("h") == "v1" and store.loads == 1
    store.value, store.gate = "v2", asyncio.Event()
    clock.now += 2  # second half: served at once, a reload starts behind it
    assert await cache.get("h") == "v1"
    await settle()
    assert await cache.get("h") == "v1" and store.loads == 2  # one reload at a time
    store.gate.set()
    await settle()
    assert await cache.get("h") == "v2"
    store.gate = asyncio.Event()
    clock.now += 10.5  # expired while nothing used it: the request waits for the store
    waiting = asyncio.ensure_future(cache.get("h"))
    await settle()
    assert not waiting.done()
    store.value = "v3"
    store.gate.set()
    assert await waiting == "v3"


async def test_a_failed_background_reload_leaves_the_entry_until_it_expires() -> None:
    store, clock = Store(), Clock()
    cache = LoadingCache(store.load, ttl_s=10, clock=clock)
    await cache.get("h")
    store.fail = True
    clock.now += 6
    assert await cache.get("h") == "v1"
    await settle()
    assert await cache.get("h") == "v1"
    await settle()
    assert store.loads == 2  # no retry storm
    clock.now += 5
    with pytest.raises(ConnectionError):
        await cache.get("h")


async def test_a_load_begun_before_invalidation_does_not_store_its_value() -> None:
    """A revocation during a (background) reload must not be undone by the reload's stale answer."""
    store, clock = Store(), Clock()
    cache = LoadingCache(store.load, ttl_s=10, clock=clock)
    await cache.get("h")
    store.gate = asyncio.Event()
    clock.now += 6
    await cache.get("h")  # starts the background reload, which answers "v1": read before the revocation
    await settle()
    cache.invalidate("h")
    store.gate.set()
    await settle()
    store.value = None  # type: ignore[assignment]
    assert await cache.get("h") is None and store.loads == 3


async def test_close_stops_background_reloads() -> None:
    store, clock = Store(), Clock()
    cache = LoadingCache(store.load, ttl_s=10, clock=clock)
    await cache.get("h")
    store.gate = asyncio.Event()
    clock.now += 6
    await cache.get("h")
    cache.close()
    await settle()
    assert not cache._refreshes


async def test_invalidate_matching_forgets_only_matching_keys() -> None:
    loads: list[tuple[str, str]] = []

    async def load(key: tuple[str, str]) -> str:
        loads.append(key)
        return "-".join(key)

    cache: LoadingCache[tuple[str, str], str] = LoadingCache(load, ttl_s=10, clock=Clock())
    for key in (("p1", "openai"), ("p1", "azure"), ("p2", "openai")):
        await cache.get(key)
    cache.invalidate_matching(lambda key: key[0] == "p1")
    assert len(cache) == 1
    await cache.get(("p2", "openai"))
    await cache.get(("p1", "azure"))
    assert loads[3:] == [("p1", "azure")]
