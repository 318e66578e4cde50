"""Analytics from the hourly rollups against raw rows: equal counters, percentiles within 1/32, edges."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import pytest

from omnigate.store.analytics import Aggregate, MetricsScope, UsageMetrics, percentile_cont, usage_metrics
from omnigate.store.database import Database
from omnigate.store.rollups import MIN_HOURS, hours_covered
from omnigate.store.usage import insert_usage
from omnigate.usage.records import UsageRecord
from tests.usage.conftest import make_record

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1_700_000_000_000 // DAY * DAY
# Cuts into the first and the last hour: the edges come from raw rows, 54 whole hours from rollups.
RANGE = (START + HOUR // 2 + 7, START + 55 * HOUR + 20 * 60_000)
SPECIAL_LATENCIES = (0, 1, 31, 32, 33, 63, 64, 1000, 2**21 - 1, 5_000_000)
only_postgres = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


def latency_bin(ms: int) -> int:
    """Migration 0004's bin of a latency."""
    if ms < 32:
        return max(ms, 0)
    exponent = ms.bit_length() - 1
    return 288 if exponent > 20 else 16 * exponent - 64 + (ms >> (exponent - 4))


def bin_estimate(index: int, low: int, high: int) -> float:
    if index < 32:
        value: float = index
    elif index >= 288:
        value = high
    else:
        shift = index // 16 - 1
        value = ((index % 16 + 16) << shift) + ((1 << shift) - 1) / 2
    return min(max(value, low), high)


def histogram_percentile(latencies: Sequence[int], p: float) -> float:
    """percentile_cont over the order statistics as the rollups estimate them (bin midpoints, clamped)."""
    bins = sorted(latency_bin(ms) for ms in latencies)
    low, high = min(latencies), max(latencies)
    position = p * (len(bins) - 1)
    rank = int(position)
    lower = bin_estimate(bins[rank], low, high)
    upper = bin_estimate(bins[min(rank + 1, len(bins) - 1)], low, high)
    return lower + (position - rank) * (upper - lower)


def seeded_records(count: int = 1500) -> list[UsageRecord]:
    """Records over 56 hours: two orgs, three projects, keys (one NULL), models, statuses, edge latencies."""
    rng = random.Random(11)
    records = []
    for i in range(count):
        project = rng.choice(("proj_a", "proj_a", "proj_b", "proj_c"))
        latency = SPECIAL_LATENCIES[i] if i < len(SPECIAL_LATENCIES) else int(rng.lognormvariate(6.5, 1.2))
        records.append(
            make_record(
                org_id="org_2" if project == "proj_c" else "org_1",
                project_id=project,
                key_id=rng.choice(("key_1", "key_2", None)),
                provider=rng.choice(("openai", "anthropic")),
                model=rng.choice(("gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o")),
                status=rng.choice(("ok", "ok", "ok", "error", "cache_hit", "cancelled", "truncated")),
                input_tokens=rng.randint(0, 5000),
                output_tokens=rng.randint(0, 900),
                cache_read_tokens=rng.randint(0, 50),
                cache_write_tokens=rng.randint(0, 5),
                reasoning_tokens=rng.randint(0, 40),
                cost_micros=None if i % 11 == 0 else rng.randint(0, 90_000),
                latency_ms=latency,
                fallback_used=i % 13 == 0,
                created_at=START + rng.randrange(0, 56 * HOUR),
            )
        )
    return records


def counters(aggregate: Aggregate) -> tuple[int, ...]:
    return (
        aggregate.requests,
        aggregate.errors,
        aggregate.cache_hits,
        aggregate.fallbacks,
        aggregate.input_tokens,
        aggregate.output_tokens,
        aggregate.cache_read_tokens,
        aggregate.cache_write_tokens,
        aggregate.reasoning_tokens,
        aggregate.cost_micros,
        aggregate.unpriced,
    )


def pairs(
    rolled: UsageMetrics, raw: UsageMetrics, latencies: Callable[[str, object], list[int]]
) -> list[tuple[Aggregate, Aggregate, list[int]]]:
    """The same aggregate from both paths with its records' latencies; asserts both have the same parts."""
    assert [g.key for g in rolled.groups] == [g.key for g in raw.groups]
    assert set(rolled.series) == set(raw.series)
    return [
        (rolled.totals, raw.totals, latencies("total", None)),
        *(
            (a.aggregate, b.aggregate, latencies("group", a.key))
            for a, b in zip(rolled.groups, raw.groups, strict=True)
        ),
        *((rolled.series[i], raw.series[i], latencies("bucket", i)) for i in rolled.series),
    ]


def test_rollups_need_whole_hour_buckets_and_a_day_of_whole_hours() -> None:
    assert hours_covered(START, START + MIN_HOURS * HOUR, HOUR) == (START // HOUR, START // HOUR + MIN_HOURS)
    assert hours_covered(START + 1, START + (MIN_HOURS + 2) * HOUR - 1, DAY) == (
        START // HOUR + 1,
        START // HOUR + MIN_HOURS + 1,
    )
    assert hours_covered(START, START + MIN_HOURS * HOUR, None) is not None
    assert hours_covered(START + 1, START + MIN_HOURS * HOUR, HOUR) is None  # 23 whole hours
    assert hours_covered(START, START + 30 * DAY, 300_000) is None  # 5-minute buckets


@pytest.mark.parametrize(
    ("scope", "keep", "groupings"),
    [
        (MetricsScope("project", "proj_a"), lambda r: r.project_id == "proj_a", ("model", "key", "status")),
        (MetricsScope("org", "org_1"), lambda r: r.org_id == "org_1", ("project", "key", "provider")),
        (MetricsScope("global"), lambda r: True, ("project", "model")),
    ],
)
async def test_rollups_answer_like_raw_rows(
    db: Database,
    scope: MetricsScope,
    keep: Callable[[UsageRecord], bool],
    groupings: tuple[str, ...],
) -> None:
    records = seeded_records()
    for chunk in range(0, len(records), 500):
        await insert_usage(db, records[chunk : chunk + 500])
    start, end = RANGE
    selected = [r for r in records if keep(r) and start <= r.created_at < end]
    columns = {"project": "project_id", "key": "key_id", "model": "model", "provider": "provider"}
    columns["status"] = "status"
    for group_by in (None, *groupings):
        for bucket in (HOUR, DAY, None):
            arguments = {"start_ms": start, "end_ms": end, "bucket_ms": bucket, "group_by": group_by}
            rolled = await usage_metrics(db, scope, **arguments)  # type: ignore[arg-type]
            raw = await usage_metrics(db, scope, exact=True, **arguments)  # type: ignore[arg-type]

            def latencies(
                kind: str, key: object, group_by: str | None = group_by, bucket: int | None = bucket
            ) -> list[int]:
                if kind == "group":
                    assert group_by is not None
                    return [r.latency_ms for r in selected if getattr(r, columns[group_by]) == key]
                if kind == "bucket":
                    assert bucket is not None
                    return [r.latency_ms for r in selected if r.created_at // bucket == key]
                return [r.latency_ms for r in selected]

            assert rolled.groups_truncated is raw.groups_truncated is False
            for approximate, exact, values in pairs(rolled, raw, latencies):
                assert counters(approximate) == counters(exact) == (len(values), *counters(exact)[1:])
                assert exact.latency_ms is not None and approximate.latency_ms is not None
                reference = [percentile_cont(sorted(float(v) for v in values), p) for p in (0.5, 0.95, 0.99)]
                assert exact.latency_ms == pytest.approx(reference, abs=1e-9)
                if db.dialect == "sqlite":  # SQLite always reads raw rows
                    assert approximate.latency_ms == pytest.approx(reference, abs=1e-9)
                    continue
                estimated = [histogram_percentile(values, p) for p in (0.5, 0.95, 0.99)]
                assert approximate.latency_ms == pytest.approx(estimated, abs=1e-9)
                for got, want in zip(approximate.latency_ms, exact.latency_ms, strict=True):
                    assert abs(got - want) <= want / 32 + 1e-9


@only_postgres
async def test_the_histogram_path_really_differs_from_raw_rows(db: Database) -> None:
    await insert_usage(db, seeded_records())
    start, end = RANGE
    rolled = await usage_metrics(db, MetricsScope("org", "org_1"), start_ms=start, end_ms=end, bucket_ms=HOUR)
    raw = await usage_metrics(
        db, MetricsScope("org", "org_1"), start_ms=start, end_ms=end, bucket_ms=HOUR, exact=True
    )
    assert rolled.totals.latency_ms != raw.totals.latency_ms
    assert counters(rolled.totals) == counters(raw.totals)


@only_postgres
async def test_pending_hours_are_answered_from_raw_rows(db: Database) -> None:
    await insert_usage(db, seeded_records())
    start, end = RANGE
    scope = MetricsScope("org", "org_1")
    raw = await usage_metrics(db, scope, start_ms=start, end_ms=end, bucket_ms=HOUR, exact=True)
    await db.execute("INSERT INTO usage_rollups_pending (org_id, hour) VALUES ('org_1', :hour)", {"hour": 10})
    try:
        assert await usage_metrics(db, scope, start_ms=start, end_ms=end, bucket_ms=HOUR) == raw
        assert await db.fetch_val("SELECT usage_rollups_backfill(100)") == 1
        rolled = await usage_metrics(db, scope, start_ms=start, end_ms=end, bucket_ms=HOUR)
        assert rolled.totals.latency_ms != raw.totals.latency_ms
    finally:
        await db.execute("DELETE FROM usage_rollups_pending")


@only_postgres
async def test_percentiles_of_few_records_and_extreme_latencies(db: Database) -> None:
    day = (START, START + DAY)
    await insert_usage(db, [make_record(latency_ms=250, created_at=START + 5)])
    metrics = await usage_metrics(
        db, MetricsScope("org", "org_a"), start_ms=day[0], end_ms=day[1], bucket_ms=DAY
    )
    assert metrics.totals.latency_ms == (250.0, 250.0, 250.0)  # one record: clamped into [min, max]
    await insert_usage(
        db, [make_record(latency_ms=ms, created_at=START + HOUR) for ms in (3_000_000, 9_000_000, -4)]
    )
    metrics = await usage_metrics(
        db, MetricsScope("org", "org_a"), start_ms=day[0], end_ms=day[1], bucket_ms=None
    )
    values = [250, 3_000_000, 9_000_000, -4]
    assert metrics.totals.latency_ms == pytest.approx(
        [histogram_percentile(values, p) for p in (0.5, 0.95, 0.99)]
    )
    assert metrics.totals.latency_ms is not None and metrics.totals.latency_ms[2] <= 9_000_000
    empty = await usage_metrics(
        db,
        MetricsScope("org", "org_a"),
        start_ms=day[1],
        end_ms=day[1] + DAY,
        bucket_ms=HOUR,
        group_by="model",
    )
    assert empty.totals == Aggregate() and empty.groups == () and empty.series == {}
