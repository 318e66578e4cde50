"""MemoryState-only behaviour: expiry purging and the in-process open_state."""

from __future__ import annotations

from omnigate.state import Counter, MemoryState, open_state

from .harness import FakeClock


async def test_expired_keys_are_purged_on_access() -> None:
    clock = FakeClock()
    state = MemoryState("p:", clock=clock, sweep_interval_s=1e9)
    await state.set("a", b"1", ttl_s=1)
    await state.incr("b", 1, ttl_s=1)
    assert state.size == 2
    clock.now += 2
    assert await state.get("a") is None
    assert state.size == 1
    assert await state.get_counters(["b"]) == (0,)
    assert state.size == 0


async def test_sweep_bounds_memory_without_access() -> None:
    clock = FakeClock()
    state = MemoryState("p:", clock=clock, sweep_interval_s=10)
    for i in range(1000):
        await state.add([Counter(f"window:{i}", 1, None, 5.0)])
    await state.set("kept", b"x")
    assert state.size == 1001
    clock.now += 11
    await state.get("unrelated")  # any access may trigger the sweep
    assert state.size == 1
    assert await state.get("kept") == b"x"


async def test_prefixes_isolate_keys_and_channels() -> None:
    clock = FakeClock()
    a = MemoryState("a:", clock=clock)
    await a.set("k", b"v")
    assert await a.get("k") == b"v"
    received: list[bytes] = []
    a.subscribe("ch", received.append)
    await a.publish("other", b"x")
    await a.publish("ch", b"y")
    assert received == [b"y"]


async def test_open_state_without_url_is_memory() -> None:
    async with open_state(None, prefix="t:") as state:
        assert isinstance(state, MemoryState)
        assert state.name == "memory"
        await state.ping()
