"""Counter operations on Redis are batched: fewer script calls than operations, each as if run alone."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import coredis
import pytest

from omnigate.state import Counter, MemoryState, SharedState

from .harness import REDIS_URL, delete_prefix, lifespan_state, unique_prefix


@pytest.fixture
async def redis_state() -> AsyncIterator[tuple[SharedState, str]]:
    prefix = unique_prefix()
    async with lifespan_state(prefix) as state:
        try:
            yield state, prefix
        finally:
            await delete_prefix(prefix)


async def script_calls() -> int:
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=True) as client:
        stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_concurrent_reservations_share_script_calls_and_stay_exact(
    redis_state: tuple[SharedState, str],
) -> None:
    state, _ = redis_state
    before = await script_calls()
    results = await asyncio.gather(*(state.reserve([Counter("rpm", 1, 50, 60.0)]) for _ in range(200)))
    calls = await script_calls() - before
    assert sum(r.admitted for r in results) == 50
    assert sorted(r.values[0] for r in results if r.admitted) == list(range(1, 51))
    assert all(r.values == (50,) for r in results if not r.admitted)
    # Other tests may share this Redis, so only a bound: 200 operations went in far fewer calls.
    assert calls < 100


async def test_a_bad_key_fails_only_its_own_operation(redis_state: tuple[SharedState, str]) -> None:
    state, prefix = redis_state
    async with coredis.Redis.from_url(REDIS_URL) as client:
        await client.set(prefix + "text", "abc")
        await client.hset(prefix + "hash", {"f": "1"})
    outcomes = await asyncio.gather(
        state.add([Counter("good", 1)]),
        state.reserve([Counter("good", 1, 10), Counter("text", 1)]),
        state.add([Counter("hash", 1)]),
        state.add([Counter("good", 1)]),
        return_exceptions=True,
    )
    assert outcomes[0] == (1,)
    assert isinstance(outcomes[1], ValueError) and "not an integer" in str(outcomes[1])
    assert isinstance(outcomes[2], ValueError) and "not an integer" in str(outcomes[2])
    assert outcomes[3] == (2,)  # the failed reservation changed nothing
    assert await state.get_counters(["good"]) == (2,)


async def test_an_operation_cancelled_before_its_batch_left_is_dropped(
    redis_state: tuple[SharedState, str],
) -> None:
    state, _ = redis_state
    kept = asyncio.ensure_future(state.add([Counter("c", 1)]))
    dropped = asyncio.ensure_future(state.add([Counter("c", 100)]))
    await asyncio.sleep(0)  # both queued; the first batch is now in flight with both in it...
    follow = asyncio.ensure_future(state.add([Counter("c", 1000)]))
    late = asyncio.ensure_future(state.add([Counter("c", 10_000)]))
    await asyncio.sleep(0)
    late.cancel()  # ...while this one waits for the next batch and never leaves
    assert (await kept)[0] in (1, 101)
    await dropped
    await follow
    with pytest.raises(asyncio.CancelledError):
        await late
    assert await state.get_counters(["c"]) == (1101,)


async def test_a_held_settlement_leaves_with_the_next_reservation(
    redis_state: tuple[SharedState, str],
) -> None:
    state, _ = redis_state
    failures: list[Exception] = []
    before = await script_calls()
    state.add_later([Counter("s", 5)], failures.append)
    await asyncio.sleep(0.002)
    assert await state.get_counters(["s"]) == (0,)  # held for company
    reservation = await state.reserve([Counter("s", 1, 100)])
    assert reservation.values == (6,)  # the settlement went first, in the same script call
    assert await script_calls() - before == 1
    assert failures == []


async def test_a_held_settlement_alone_leaves_after_the_hold(redis_state: tuple[SharedState, str]) -> None:
    state, _ = redis_state
    state.add_later([Counter("s", 3)], pytest.fail)
    for _ in range(100):
        if await state.get_counters(["s"]) == (3,):
            break
        await asyncio.sleep(0.01)
    assert await state.get_counters(["s"]) == (3,)


async def test_a_settlement_that_fails_is_reported_not_raised(redis_state: tuple[SharedState, str]) -> None:
    state, prefix = redis_state
    async with coredis.Redis.from_url(REDIS_URL) as client:
        await client.set(prefix + "text", "abc")
    failures: list[Exception] = []
    state.add_later([Counter("text", 1)], failures.append)
    state.add_later([Counter("ok", 1.5)], failures.append)  # type: ignore[arg-type]
    assert len(failures) == 1 and isinstance(failures[0], TypeError)  # refused before it is queued
    await state.reserve([Counter("ok", 1, 10)])  # takes the held settlement along
    await asyncio.sleep(0)
    assert len(failures) == 2 and "not an integer" in str(failures[1])
    assert await state.get_counters(["ok"]) == (1,)


def random_operations(rng: random.Random, count: int) -> list[tuple[bool, list[Counter]]]:
    """Reservations and adds over a few shared keys; "big" crosses 2**52 (where sums leave Lua numbers).

    Guards name keys that come and go within a batch ("a", "b"), one never written ("never") and one
    holding text."""
    operations = []
    for _ in range(count):
        items = []
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(["a", "b", "c", "big"])
            guard = rng.choice([None, None, "a", "b", "never", "text"])
            if key == "big":  # no limit: limit checks are exact only below 2**53
                amount = rng.choice([0, 5, -3, 2**52 + 7, -(2**51)])
                items.append(Counter(key, amount, None, rng.choice([None, 60.0]), guard))
            else:
                amount = rng.choice([0, 1, 2, 7, -1])
                limit = rng.choice([None, 10, 25])
                items.append(Counter(key, amount, limit, rng.choice([None, 60.0, 120.0]), guard))
        operations.append((rng.random() < 0.6, items))
    return operations


async def outcome(state: SharedState, check: bool, items: list[Counter]) -> tuple[object, ...]:
    try:
        if not check:
            return ("added", await state.add(items))
        reservation = await state.reserve(items)
    except ValueError:
        return ("failed",)
    # TTLs: missing (-2) and none (-1) exactly, a set one to within a second (Redis counts down).
    ttls = tuple(t if t < 0 else round(t / 1000) for t in reservation.ttls_ms)
    return (
        "reserved",
        reservation.admitted,
        reservation.refused,
        reservation.values,
        ttls,
        reservation.unguarded,
    )


@pytest.mark.parametrize("seed", range(6))
async def test_a_batch_answers_as_its_operations_would_one_by_one(
    redis_state: tuple[SharedState, str], seed: int
) -> None:
    state, prefix = redis_state
    rng = random.Random(seed)
    reference = MemoryState("reference:")
    async with coredis.Redis.from_url(REDIS_URL) as client:
        await client.set(prefix + "text", "abc")
    await reference.set("text", b"abc")
    for round_ in range(3):  # later rounds start from what earlier batches left in Redis
        operations = random_operations(rng, 40)
        if round_ == 1:
            operations.insert(5, (True, [Counter("a", 1, 10), Counter("text", 1)]))  # fails alone
        got = await asyncio.gather(*(outcome(state, check, items) for check, items in operations))
        want = [await outcome(reference, check, items) for check, items in operations]
        assert got == want
    keys = ["a", "b", "c", "big"]
    assert await state.get_counters(keys) == await reference.get_counters(keys)


async def test_a_reservation_whose_caller_left_while_it_was_in_flight_is_given_back(
    redis_state: tuple[SharedState, str],
) -> None:
    state, _ = redis_state
    await state.add([Counter("r", 10)])
    batcher = state._counters  # type: ignore[attr-defined]
    run_script, sent, go_on, ran = batcher._run_script, asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def held_in_flight(keys: list[str], args: list[str]) -> bytes:
        sent.set()
        await go_on.wait()
        try:
            return await run_script(keys, args)  # the real script, on the real Redis
        finally:
            ran.set()

    batcher._run_script = held_in_flight
    reserving = asyncio.ensure_future(state.reserve([Counter("r", 5, 100, 60.0)]))
    await sent.wait()
    reserving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reserving
    go_on.set()  # now the script runs and reserves: nobody is there to settle it
    await ran.wait()
    for _ in range(100):
        if await state.get_counters(["r"]) == (10,):
            break
        await asyncio.sleep(0.01)
    assert await state.get_counters(["r"]) == (10,)
    batcher._run_script = run_script
    assert (await state.reserve([Counter("r", 1, 100)])).values == (11,)
