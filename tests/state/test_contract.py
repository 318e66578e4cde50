"""Contract tests every SharedState backend must pass (run against memory and Redis)."""

from __future__ import annotations

import asyncio

import pytest

from omnigate.state import TTL_MISSING, TTL_NONE, Counter, SharedState

from .harness import Backend

pytestmark = pytest.mark.backend


async def deliver(publisher: SharedState, channel: str, message: bytes, received: list[bytes]) -> None:
    """Publish until the message arrives: a Redis subscription becomes active asynchronously."""
    async with asyncio.timeout(5):
        while message not in received:
            await publisher.publish(channel, message)
            for _ in range(10):
                await asyncio.sleep(0.01)
                if message in received:
                    return


async def test_get_set_delete(state: SharedState) -> None:
    assert await state.get("k") is None
    await state.set("k", b"v1")
    assert await state.get("k") == b"v1"
    await state.set("k", b"\x00\xffbinary")
    assert await state.get("k") == b"\x00\xffbinary"
    await state.delete("k")
    assert await state.get("k") is None
    await state.delete("never-existed")


async def test_set_ttl_expires(backend: Backend) -> None:
    state, ttl = backend.state, backend.short_ttl
    await state.set("short", b"x", ttl_s=ttl)
    await state.set("long", b"y", ttl_s=ttl * 100)
    assert await state.get("short") == b"x"
    await backend.elapse(ttl * 1.5)
    assert await state.get("short") is None
    assert await state.get("long") == b"y"


async def test_set_without_ttl_clears_expiry(backend: Backend) -> None:
    state, ttl = backend.state, backend.short_ttl
    await state.set("k", b"1", ttl_s=ttl)
    await state.set("k", b"2")
    await backend.elapse(ttl * 1.5)
    assert await state.get("k") == b"2"


@pytest.mark.parametrize("bad", [0, -1.0])
async def test_non_positive_ttl_rejected(state: SharedState, bad: float) -> None:
    with pytest.raises(ValueError):
        await state.set("k", b"v", ttl_s=bad)
    with pytest.raises(ValueError):
        await state.incr("k", 1, ttl_s=bad)
    assert await state.get("k") is None


async def test_incr(state: SharedState) -> None:
    assert await state.incr("n") == 1
    assert await state.incr("n", 41) == 42
    assert await state.incr("n", -2) == 40
    assert await state.get("n") == b"40"
    await state.set("text", b"abc")
    with pytest.raises(ValueError):
        await state.incr("text")
    assert await state.get("text") == b"abc"


async def test_incr_ttl_is_set_on_creation_only(backend: Backend) -> None:
    state, ttl = backend.state, backend.short_ttl
    assert await state.incr("n", 1, ttl_s=ttl) == 1
    await backend.elapse(ttl * 0.5)
    assert await state.incr("n", 1, ttl_s=ttl * 100) == 2  # does not extend the first expiry
    await backend.elapse(ttl * 0.75)
    assert await state.get("n") is None
    assert await state.incr("n", 5, ttl_s=ttl) == 5  # a fresh window


async def test_incr_gives_a_ttl_to_a_counter_that_has_none(backend: Backend) -> None:
    state, ttl = backend.state, backend.short_ttl
    await state.incr("n", 1)
    await state.incr("n", 1, ttl_s=ttl)
    await backend.elapse(ttl * 1.5)
    assert await state.get("n") is None


def four(amounts: tuple[int, int, int, int], limits: tuple[int | None, ...]) -> list[Counter]:
    ttls = (None, 60.0, 3600.0, None)
    return [Counter(f"c{i}", amounts[i], limits[i], ttls[i]) for i in range(4)]


async def test_reserve_is_all_or_nothing(state: SharedState) -> None:
    limits = (100, 10, None, 5)
    ok = await state.reserve(four((1, 6, 1000, 2), limits))
    assert ok.admitted and ok.refused is None
    assert ok.values == (1, 6, 1000, 2)
    assert ok.ttls_ms[0] == TTL_NONE and ok.ttls_ms[3] == TTL_NONE
    assert 59_000 < ok.ttls_ms[1] <= 60_000 and 3_599_000 < ok.ttls_ms[2] <= 3_600_000

    refused = await state.reserve(four((1, 1, 1, 4), limits))  # c3: 2 + 4 > 5
    assert not refused.admitted and refused.refused == 3
    assert refused.values == (1, 6, 1000, 2)
    assert await state.get_counters(["c0", "c1", "c2", "c3"]) == (1, 6, 1000, 2)

    first = await state.reserve(four((1, 5, 1, 4), limits))  # c1 and c3 both refuse: report c1
    assert (first.admitted, first.refused) == (False, 1)

    exact = await state.reserve(four((99, 4, 1, 3), limits))  # reaching the limit exactly is allowed
    assert exact.admitted and exact.values == (100, 10, 1001, 5)


async def test_reserve_refusal_reports_missing_keys(state: SharedState) -> None:
    result = await state.reserve([Counter("fresh", 1, None, 10.0), Counter("tiny", 2, 1, 10.0)])
    assert (result.admitted, result.refused) == (False, 1)
    assert result.values == (0, 0)
    assert result.ttls_ms == (TTL_MISSING, TTL_MISSING)
    assert await state.get("fresh") is None


async def test_reserve_reports_the_counters_whose_guard_is_missing(state: SharedState) -> None:
    items = [
        Counter("spend", 5, 100, 60.0, guard="spend:seeded"),
        Counter("rpm", 1, 10, 60.0),
        Counter("other", 1, None, None, guard="spend"),  # created by this very reservation: present
    ]
    lost = await state.reserve(items)
    assert lost.admitted and lost.unguarded == (0,)
    assert await state.get("spend:seeded") is None  # guards are only read
    await state.incr("spend:seeded", 1, 60.0)
    assert (await state.reserve(items)).unguarded == ()
    await state.delete("spend:seeded")
    refused = await state.reserve([Counter("spend", 1000, 100, 60.0, guard="spend:seeded")])
    assert (refused.admitted, refused.unguarded) == (False, (0,))  # reported when refused, too
    await state.set("spend:seeded", b"not a number")
    assert (await state.reserve(items[:1])).unguarded == ()  # a guard is any existing key


async def test_reserve_same_key_twice_counts_both(state: SharedState) -> None:
    await state.incr("k", 3)
    refused = await state.reserve([Counter("k", 2, 8), Counter("k", 4, 8)])
    assert (refused.admitted, refused.refused, refused.values) == (False, 1, (3, 3))
    ok = await state.reserve([Counter("k", 2, 8), Counter("k", 3, 8)])
    assert ok.admitted and ok.values == (5, 8)


async def test_reserve_non_positive_amounts_never_refuse(state: SharedState) -> None:
    await state.incr("over", 50)
    result = await state.reserve([Counter("over", 0, 10), Counter("over", -5, 10), Counter("x", 1, 1)])
    assert result.admitted and result.values == (50, 45, 1)
    refused = await state.reserve([Counter("over", -5, 10), Counter("over", 1, 10)])
    assert (refused.admitted, refused.refused) == (False, 1)


async def test_zero_amount_does_not_create_a_key(state: SharedState) -> None:
    result = await state.reserve([Counter("zero", 0, 10, 60.0)])
    assert result.admitted and result.values == (0,) and result.ttls_ms == (TTL_MISSING,)
    assert await state.add([Counter("zero", 0, None, 60.0)]) == (0,)
    assert await state.get("zero") is None


async def test_reserve_unlimited_counter_still_increments(state: SharedState) -> None:
    for expected in (7, 14):
        result = await state.reserve([Counter("u", 7, None)])
        assert result.admitted and result.values == (expected,)


async def test_reserve_empty(state: SharedState) -> None:
    result = await state.reserve([])
    assert result.admitted and result.refused is None and result.values == () and result.ttls_ms == ()
    assert await state.add([]) == ()
    assert await state.get_counters([]) == ()


async def test_concurrent_reserves_admit_exactly_the_limit(state: SharedState) -> None:
    items = [Counter("rpm", 1, 10, 60.0), Counter("budget", 250, 1_000_000, None), Counter("seen", 1, None)]
    results = await asyncio.gather(*(state.reserve(items) for _ in range(200)))
    admitted = [r for r in results if r.admitted]
    assert len(admitted) == 10
    assert sorted(r.values[0] for r in admitted) == list(range(1, 11))
    assert all(r.refused == 0 and r.values[0] == 10 for r in results if not r.admitted)
    assert await state.get_counters(["rpm", "budget", "seen"]) == (10, 2500, 10)


async def test_add_settles_and_releases(backend: Backend) -> None:
    state = backend.state
    reserved = await state.reserve([Counter("spend", 500, 1000, 3600.0), Counter("req", 1, 1)])
    assert reserved.admitted
    # settle to the real cost (-380) and release the request slot (-1); limits are ignored by add
    assert await state.add([Counter("spend", -380, 1), Counter("req", -1, 0)]) == (120, 0)
    assert await state.add([Counter("spend", 5000, 1000)]) == (5120,)
    assert (await state.reserve([Counter("spend", 1, 1000, 3600.0)])).ttls_ms[0] > 3_590_000


async def test_add_creates_missing_keys_with_ttl(backend: Backend) -> None:
    state, ttl = backend.state, backend.short_ttl
    assert await state.add([Counter("neg", -3, None, ttl), Counter("pos", 2, None, ttl)]) == (-3, 2)
    assert await state.get_counters(["neg", "pos"]) == (-3, 2)
    await backend.elapse(ttl * 1.5)
    assert await state.get_counters(["neg", "pos"]) == (0, 0)


async def test_add_later_goes_before_every_later_operation_and_reports_failures(state: SharedState) -> None:
    failures: list[Exception] = []
    state.add_later([Counter("later", 2, None, 60.0)], failures.append)
    assert (await state.reserve([Counter("later", 1, 10)])).values == (3,)
    await state.set("text", b"nope")
    state.add_later([Counter("later", 5), Counter("text", 1)], failures.append)
    assert (await state.reserve([Counter("later", 1, 10)])).values == (4,)  # the failed add wrote nothing
    await asyncio.sleep(0)
    assert len(failures) == 1 and isinstance(failures[0], ValueError)


async def test_add_validates_every_key_before_writing(state: SharedState) -> None:
    await state.set("text", b"nope")
    with pytest.raises(ValueError):
        await state.add([Counter("ok", 1), Counter("text", 1)])
    with pytest.raises(ValueError):
        await state.reserve([Counter("ok", 1, 10), Counter("text", 1, 10)])
    assert await state.get("ok") is None
    with pytest.raises(ValueError):
        await state.get_counters(["text"])


async def test_get_counters(state: SharedState) -> None:
    await state.incr("a", 3)
    await state.incr("c", -4)
    assert await state.get_counters(["a", "b", "c", "a"]) == (3, 0, -4, 3)


async def test_large_counters_stay_exact(state: SharedState) -> None:
    # Values are exact to 64 bits; limit checks are exact up to 2**53 (Lua compares doubles).
    big = 2**60 + 1
    assert await state.add([Counter("big", big)]) == (big,)
    assert await state.incr("big", 2) == big + 2
    assert await state.get_counters(["big"]) == (big + 2,)
    near = 2**53 - 10
    await state.incr("near", near)
    assert not (await state.reserve([Counter("near", 2, near + 1)])).admitted
    result = await state.reserve([Counter("near", 1, near + 1)])
    assert result.admitted and result.values == (near + 1,)


async def test_publish_subscribe_same_instance(state: SharedState) -> None:
    received: list[bytes] = []
    other: list[bytes] = []
    state.subscribe("revoked", received.append)
    state.subscribe("unrelated", other.append)
    await deliver(state, "revoked", b"key-123", received)
    assert other == []


async def test_failing_callback_does_not_stop_delivery(state: SharedState) -> None:
    received: list[bytes] = []

    def broken(message: bytes) -> None:
        raise RuntimeError("boom")

    state.subscribe("ch", broken)
    state.subscribe("ch", received.append)
    await deliver(state, "ch", b"one", received)
    await deliver(state, "ch", b"two", received)


async def test_ping(state: SharedState) -> None:
    await state.ping()
    assert state.name in {"memory", "redis"}
