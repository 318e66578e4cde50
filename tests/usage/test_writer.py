"""UsageWriter against real databases: concurrency, outages, lost acks, bad rows, full buffer, shutdown."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
import pytest

from omnigate.store.database import Database
from omnigate.store.usage import count_usage, list_usage
from omnigate.usage.writer import UsageWriter
from tests.usage.conftest import Captured, make_record

FAST = {"flush_interval_s": 0.01, "retry_base_s": 0.01, "retry_max_s": 0.05}


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def take_table_away(db: Database) -> None:
    await db.execute("ALTER TABLE usage_records RENAME TO usage_records_away")


async def bring_table_back(db: Database) -> None:
    await db.execute("ALTER TABLE usage_records_away RENAME TO usage_records")


class LostAck:
    """A Database whose first ``failures`` batch writes commit and then lose the connection.

    The writer sees the driver's own connection error although the rows are in, so it must retry,
    and the retry must not count them twice.
    """

    def __init__(self, db: Database, failures: int) -> None:
        self._db = db
        self.remaining = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def execute_many(self, query: str, rows: Sequence[Mapping[str, Any]]) -> None:
        await self._db.execute_many(query, rows)
        if self.remaining:
            self.remaining -= 1
            if self._db.dialect == "postgresql":
                raise asyncpg.exceptions.ConnectionDoesNotExistError(
                    "connection was closed in the middle of operation"
                )
            raise sqlite3.OperationalError("disk I/O error")


async def test_concurrent_submits_are_written_exactly_once(db: Database) -> None:
    writer = UsageWriter(db, batch_size=100, **FAST)
    writer.start()
    records = [make_record() for _ in range(1_000)]

    async def submit(record: Any) -> bool:
        await asyncio.sleep(0)
        return writer.submit(record)

    assert all(await asyncio.gather(*(submit(r) for r in records)))
    await writer.aclose()
    assert await count_usage(db) == 1_000
    assert {r.request_id for r in await list_usage(db, "proj_a")} == {r.request_id for r in records}
    assert (writer.written, writer.dropped, writer.failed_attempts, writer.queue_depth) == (1_000, 0, 0, 0)
    assert not writer.running


async def test_outage_then_recovery_writes_everything_once(db: Database, usage_log: Captured) -> None:
    writer = UsageWriter(db, batch_size=50, **FAST)
    await take_table_away(db)
    try:
        writer.start()
        first = [make_record() for _ in range(200)]
        for record in first:
            assert writer.submit(record)
        await until(lambda: writer.failed_attempts >= 3)
        later = [make_record() for _ in range(100)]
        for record in later:
            assert writer.submit(record)
        assert writer.queue_depth == 300 and writer.written == 0
    finally:
        await bring_table_back(db)
    await until(lambda: writer.queue_depth == 0)
    await writer.aclose()
    assert await count_usage(db) == 300
    assert writer.written == 300 and writer.dropped == 0
    assert any("retrying" in m for m in usage_log.at(logging.WARNING))
    assert any("recovered" in m for m in usage_log.at(logging.INFO))


async def test_lost_ack_replay_is_not_double_counted(db: Database) -> None:
    flaky = LostAck(db, failures=2)
    writer = UsageWriter(flaky, batch_size=50, **FAST)
    writer.start()
    for _ in range(120):
        writer.submit(make_record())
    await writer.aclose()
    assert flaky.remaining == 0
    assert await count_usage(db) == 120
    assert writer.written == 120 and writer.failed_attempts == 2 and writer.dropped == 0


async def test_a_bad_row_is_dropped_alone(db: Database, usage_log: Captured) -> None:
    writer = UsageWriter(db, batch_size=100, **FAST)
    good = [make_record() for _ in range(10)]
    poison = make_record(latency_ms=2**64)  # the driver refuses it: retrying cannot help
    for record in [*good[:5], poison, *good[5:]]:
        writer.submit(record)
    writer.start()
    await writer.aclose()
    assert await count_usage(db) == 10
    assert writer.written == 10 and writer.dropped == 1
    assert any(poison.request_id in m for m in usage_log.at(logging.ERROR))


async def test_full_buffer_drops_are_counted_and_logged(db: Database, usage_log: Captured) -> None:
    now = [100.0]
    writer = UsageWriter(db, max_buffer=10, drop_log_interval_s=10.0, clock=lambda: now[0], **FAST)
    results = [writer.submit(make_record()) for _ in range(15)]
    assert results == [True] * 10 + [False] * 5
    assert writer.dropped == 5 and writer.queue_depth == 10
    errors = usage_log.at(logging.ERROR)
    assert len(errors) == 1 and "full" in errors[0]  # rate-limited: one line for the burst
    now[0] += 11
    assert not writer.submit(make_record())
    errors = usage_log.at(logging.ERROR)
    assert len(errors) == 2 and "5 usage record(s)" in errors[1]  # the 4 unreported + this one
    await writer.aclose()  # never started: aclose drains anyway
    assert await count_usage(db) == 10
    assert writer.written == 10 and writer.dropped == 6


async def test_aclose_flushes_without_waiting_for_the_interval(db: Database) -> None:
    writer = UsageWriter(db, flush_interval_s=60.0)
    writer.start()
    for _ in range(7):
        writer.submit(make_record())
    started = time.monotonic()
    await writer.aclose()
    assert time.monotonic() - started < 2.0
    assert await count_usage(db) == 7
    assert not writer.submit(make_record())
    assert writer.dropped == 1
    await writer.aclose()  # idempotent


async def test_aclose_timeout_counts_and_logs_unwritten(db: Database, usage_log: Captured) -> None:
    writer = UsageWriter(db, **FAST)
    await take_table_away(db)
    try:
        writer.start()
        for _ in range(20):
            writer.submit(make_record())
        await writer.aclose(timeout_s=0.3)
    finally:
        await bring_table_back(db)
    assert writer.dropped == 20 and writer.written == 0 and writer.queue_depth == 0
    assert writer.failed_attempts >= 1
    assert any("20 record(s) unwritten" in m for m in usage_log.at(logging.ERROR))
    assert not writer.running
    assert await count_usage(db) == 0


async def test_backoff_is_exponential_and_capped(db: Database) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.001)

    writer = UsageWriter(db, flush_interval_s=0.01, retry_base_s=0.1, retry_max_s=1.0, sleep=sleep)
    await take_table_away(db)
    try:
        writer.start()
        writer.submit(make_record())
        await until(lambda: len(delays) >= 8)
    finally:
        await bring_table_back(db)
    await writer.aclose()
    for attempt, delay in enumerate(delays[:8]):
        ceiling = min(1.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert writer.failed_attempts >= 8 and writer.written == 1
    assert await count_usage(db) == 1


async def test_cancelled_task_keeps_its_batch(db: Database, usage_log: Captured) -> None:
    writer = UsageWriter(db, **FAST)
    await take_table_away(db)
    try:
        writer.start()
        for _ in range(30):
            writer.submit(make_record())
        await until(lambda: writer.failed_attempts >= 1)
        task = writer._task
        assert task is not None
        task.cancel()
        await asyncio.wait([task])
        assert writer.queue_depth == 30 and not writer.running
        assert any("cancelled" in m for m in usage_log.at(logging.ERROR))
    finally:
        await bring_table_back(db)
    await writer.aclose()  # restarts a drain for what is left
    assert await count_usage(db) == 30 and writer.written == 30 and writer.dropped == 0


def test_construction_needs_no_event_loop() -> None:
    writer = UsageWriter(object())  # type: ignore[arg-type]
    assert writer._task is None and writer._wake is None
    assert writer.submit(make_record())
    assert writer.queue_depth == 1
    with pytest.raises(ValueError):
        UsageWriter(object(), batch_size=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        UsageWriter(object(), retry_base_s=1.0, retry_max_s=0.5)  # type: ignore[arg-type]


async def test_flush_writes_a_partial_batch_now(db: Database) -> None:
    writer = UsageWriter(db, flush_interval_s=60.0)
    await writer.flush()  # nothing buffered: returns at once, even before start()
    writer.start()
    for _ in range(5):
        writer.submit(make_record())
    await writer.flush(timeout_s=2.0)
    assert await count_usage(db) == 5 and writer.queue_depth == 0
    writer.submit(make_record())
    await asyncio.gather(writer.flush(timeout_s=2.0), writer.flush(timeout_s=2.0))
    assert await count_usage(db) == 6
    await writer.aclose()


async def test_flush_times_out_during_an_outage_and_keeps_the_records(db: Database) -> None:
    writer = UsageWriter(db, **FAST)
    writer.start()
    await take_table_away(db)
    try:
        for _ in range(3):
            writer.submit(make_record())
        with pytest.raises(TimeoutError):
            await writer.flush(timeout_s=0.2)
        assert writer.queue_depth == 3 and writer.failed_attempts >= 1
    finally:
        await bring_table_back(db)
    await writer.flush(timeout_s=5.0)
    assert await count_usage(db) == 3
    await writer.aclose()
