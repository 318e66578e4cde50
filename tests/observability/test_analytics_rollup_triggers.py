"""The rollup triggers and the 0004 backfill keep usage_rollups equal to a rebuild from usage_records."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import attrs
import pytest

from omnigate.store import migrate
from omnigate.store.database import Database
from omnigate.store.usage import insert_usage
from omnigate.usage.records import UsageRecord
from tests.store.conftest import fresh_url
from tests.usage.conftest import make_record

__all__ = ["fresh_url"]

HOUR = 3_600_000
START = 1_700_000_000_000 // HOUR * HOUR
only_postgres = pytest.mark.parametrize("db", ["postgresql"], indirect=True)

ROLLUP_ROWS = "SELECT * FROM usage_rollups ORDER BY org_id, dimension, hour, project_id, value"
REBUILD = (
    "TRUNCATE usage_rollups",
    "INSERT INTO usage_rollups_pending (org_id, hour) SELECT DISTINCT org_id, created_at / 3600000"
    " FROM usage_records ON CONFLICT DO NOTHING",
    "SELECT usage_rollups_backfill(100000)",
)
PROJECT_HOURS = (
    "SELECT org_id, project_id, hour, requests, errors, cost_micros, unpriced, latency_min, latency_max"
    " FROM usage_rollups WHERE dimension = '' AND project_id <> ''"
)


def records(count: int, seed: int) -> list[UsageRecord]:
    rng = random.Random(seed)
    return [
        make_record(
            org_id=rng.choice(("org_1", "org_2")),
            project_id=rng.choice(("proj_a", "proj_b")),
            key_id=rng.choice(("key_1", None)),
            model=rng.choice(("gpt-4o", "gpt-4o-mini")),
            status=rng.choice(("ok", "error", "cache_hit", "truncated")),
            cost_micros=None if rng.random() < 0.1 else rng.randint(0, 5000),
            latency_ms=rng.randint(0, 20_000),
            created_at=START + rng.randrange(0, 6 * HOUR),
        )
        for _ in range(count)
    ]


async def rollup_rows(db: Database) -> list[dict[str, Any]]:
    return await db.fetch_all(ROLLUP_ROWS)


async def rebuilt_rows(db: Database) -> list[dict[str, Any]]:
    """The rollups rebuilt from nothing but the raw rows, as the migration's backfill does."""
    for statement in REBUILD:
        await db.execute(statement)
    return await rollup_rows(db)


def expected_project_hours(rows: list[UsageRecord]) -> set[tuple[Any, ...]]:
    """Per project-hour counters computed in Python, for the '' rows of each project."""
    groups: dict[tuple[str, str, int], list[UsageRecord]] = {}
    for r in rows:
        groups.setdefault((r.org_id, r.project_id, r.created_at // HOUR), []).append(r)
    return {
        (
            *key,
            len(group),
            sum(r.status in ("error", "truncated") for r in group),
            sum(r.cost_micros or 0 for r in group),
            sum(r.cost_micros is None for r in group),
            min(r.latency_ms for r in group),
            max(r.latency_ms for r in group),
        )
        for key, group in groups.items()
    }


async def project_hours(db: Database) -> set[tuple[Any, ...]]:
    return {tuple(row.values()) for row in await db.fetch_all(PROJECT_HOURS)}


@only_postgres
async def test_replayed_and_overlapping_batches_count_once(db: Database) -> None:
    batch = records(300, seed=1)
    await insert_usage(db, batch)
    await insert_usage(db, batch)  # commit acknowledged, ack lost, batch replayed
    more = records(100, seed=2)
    await insert_usage(db, [*batch[:50], *more, *more[:10]])  # overlap and repeats within one batch
    async with db.transaction() as tx:  # inside a transaction: one statement per row
        extra = records(20, seed=3)
        await insert_usage(tx, [*extra, *batch[:5]])
    everything = [*batch, *more, *extra]
    assert await project_hours(db) == expected_project_hours(everything)
    totals = await db.fetch_one(
        "SELECT SUM(requests) AS requests FROM usage_rollups WHERE dimension = 'model' AND project_id = ''"
    )
    assert totals == {"requests": len(everything)}
    assert await rollup_rows(db) == await rebuilt_rows(db)


@only_postgres
async def test_deletes_updates_and_truncate_keep_the_rollups_exact(db: Database) -> None:
    rows = records(400, seed=4)
    await insert_usage(db, rows)
    await db.execute("DELETE FROM usage_records WHERE project_id = 'proj_b' AND status = 'error'")
    kept = [r for r in rows if not (r.project_id == "proj_b" and r.status == "error")]
    await db.execute(
        "UPDATE usage_records SET model = 'o3', created_at = created_at + 7200000 WHERE status = 'cache_hit'"
    )
    moved = {r.request_id for r in kept if r.status == "cache_hit"}
    kept = [attrs.evolve(r, created_at=r.created_at + 2 * HOUR) if r.request_id in moved else r for r in kept]
    assert await project_hours(db) == expected_project_hours(kept)
    models = await db.fetch_all(
        "SELECT value, SUM(requests) AS n FROM usage_rollups WHERE dimension = 'model' AND project_id = ''"
        " GROUP BY value ORDER BY value"
    )
    counted = Counter("o3" if r.request_id in moved else r.model for r in kept)
    assert {row["value"]: row["n"] for row in models} == dict(counted)
    assert await rollup_rows(db) == await rebuilt_rows(db)
    await db.execute("DELETE FROM usage_records")
    assert await rollup_rows(db) == []
    await insert_usage(db, records(50, seed=5))
    await db.execute("TRUNCATE usage_records")
    assert await rollup_rows(db) == []


@only_postgres
async def test_concurrent_writers_for_the_same_hours_neither_deadlock_nor_lose_counts(db: Database) -> None:
    batches = [records(200, seed=10 + i) for i in range(6)]
    await asyncio.gather(*(insert_usage(db, batch) for batch in batches))
    everything = [r for batch in batches for r in batch]
    assert await project_hours(db) == expected_project_hours(everything)
    assert await rollup_rows(db) == await rebuilt_rows(db)


async def insert_0003_era(db: Database, rows: list[UsageRecord]) -> None:
    """Rows as the 0003 schema holds them (before 0005's client_request_id)."""
    fields = [f.name for f in attrs.fields(UsageRecord) if f.name != "client_request_id"]
    sql = f"INSERT INTO usage_records ({', '.join(fields)}) VALUES ({', '.join(':' + f for f in fields)})"  # noqa: S608
    await db.execute_many(sql, [{f: getattr(row, f) for f in fields} for row in rows])


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
async def test_the_migration_backfills_existing_rows_and_rolls_back(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    later = ["0005_usage_client_request_id", "0004_usage_rollups"]
    assert migrate.downgrade(fresh_url, to="0003_multikey_monthly_meta") == later
    rows = records(500, seed=6)
    db = Database(fresh_url)
    await db.connect()
    try:
        await insert_0003_era(db, rows)  # no rollups yet
        await db.disconnect()
        assert migrate.upgrade(fresh_url) == later[::-1]
        await db.connect()
        assert await db.fetch_val("SELECT COUNT(*) FROM usage_rollups_pending") == 0
        assert await project_hours(db) == expected_project_hours(rows)
        backfilled = await rollup_rows(db)
        # An upgrade interrupted during the backfill is not recorded: running it again rebuilds.
        await db.execute("DELETE FROM _yoyo_migration WHERE migration_id = '0004_usage_rollups'")
        await db.disconnect()
        assert migrate.upgrade(fresh_url) == ["0004_usage_rollups"]
        await db.connect()
        assert await rollup_rows(db) == backfilled
        await db.execute("TRUNCATE usage_records")
        await insert_usage(db, rows)  # the same rows through the insert trigger
        assert await rollup_rows(db) == backfilled
        await db.disconnect()
        assert migrate.downgrade(fresh_url, to="0003_multikey_monthly_meta") == later
        await db.connect()
        assert await db.fetch_val("SELECT to_regclass('usage_rollups') IS NULL") is True
        assert await db.fetch_val("SELECT COUNT(*) FROM pg_proc WHERE proname LIKE 'usage_%'") == 0
    finally:
        await db.disconnect()
