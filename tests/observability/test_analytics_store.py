"""Analytics SQL against a reference computed in Python, on SQLite and on PostgreSQL (percentile_cont)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import pytest

from omnigate.store.analytics import Aggregate, MetricsScope, percentile_cont, usage_metrics
from omnigate.store.database import Database
from omnigate.store.usage import insert_usage
from omnigate.usage.records import UsageRecord
from tests.usage.conftest import make_record

HOUR = 3_600_000
START = 1_700_000_000_000 // HOUR * HOUR  # an hour boundary
STATUSES = ("ok", "ok", "ok", "error", "cache_hit", "cancelled", "truncated")


def seeded_records(count: int = 400) -> list[UsageRecord]:
    """Records over 6 hours for two orgs, three projects, keys (one NULL), models and statuses."""
    rng = random.Random(7)
    records = []
    for i in range(count):
        project = rng.choice(("proj_a", "proj_a", "proj_b", "proj_c"))
        records.append(
            make_record(
                org_id="org_2" if project == "proj_c" else "org_1",
                project_id=project,
                key_id=rng.choice(("key_1", "key_2", None)),
                provider=rng.choice(("openai", "anthropic")),
                model=rng.choice(("gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o")),
                status=rng.choice(STATUSES),
                input_tokens=rng.randint(0, 5000),
                output_tokens=rng.randint(0, 900),
                cache_read_tokens=rng.randint(0, 50),
                cache_write_tokens=rng.randint(0, 5),
                reasoning_tokens=rng.randint(0, 40),
                cost_micros=None if i % 11 == 0 else rng.randint(0, 90_000),
                latency_ms=int(rng.lognormvariate(6.5, 0.9)),
                fallback_used=i % 13 == 0,
                created_at=START + rng.randrange(0, 6 * HOUR),
            )
        )
    return records


def reference(records: Sequence[UsageRecord]) -> Aggregate:
    if not records:
        return Aggregate()
    latencies = sorted(float(r.latency_ms) for r in records)
    p50, p95, p99 = (percentile_cont(latencies, p) for p in (0.5, 0.95, 0.99))
    return Aggregate(
        requests=len(records),
        errors=sum(r.status in ("error", "truncated") for r in records),
        cache_hits=sum(r.status == "cache_hit" for r in records),
        fallbacks=sum(r.fallback_used for r in records),
        input_tokens=sum(r.input_tokens for r in records),
        output_tokens=sum(r.output_tokens for r in records),
        cache_read_tokens=sum(r.cache_read_tokens for r in records),
        cache_write_tokens=sum(r.cache_write_tokens for r in records),
        reasoning_tokens=sum(r.reasoning_tokens for r in records),
        cost_micros=sum(r.cost_micros or 0 for r in records),
        unpriced=sum(r.cost_micros is None for r in records),
        latency_ms=(p50, p95, p99),
    )


def assert_same(actual: Aggregate, expected: Aggregate) -> None:
    assert actual.latency_ms == pytest.approx(expected.latency_ms, abs=1e-9)
    assert (actual.requests, actual.errors, actual.cache_hits, actual.fallbacks, actual.unpriced) == (
        expected.requests,
        expected.errors,
        expected.cache_hits,
        expected.fallbacks,
        expected.unpriced,
    )
    assert (
        actual.input_tokens,
        actual.output_tokens,
        actual.cache_read_tokens,
        actual.cache_write_tokens,
        actual.reasoning_tokens,
        actual.cost_micros,
    ) == (
        expected.input_tokens,
        expected.output_tokens,
        expected.cache_read_tokens,
        expected.cache_write_tokens,
        expected.reasoning_tokens,
        expected.cost_micros,
    )


def by(
    records: Sequence[UsageRecord], key: Callable[[UsageRecord], object]
) -> dict[object, list[UsageRecord]]:
    grouped: dict[object, list[UsageRecord]] = defaultdict(list)
    for record in records:
        grouped[key(record)].append(record)
    return grouped


@pytest.mark.parametrize(
    ("scope", "keep"),
    [
        (MetricsScope("project", "proj_a"), lambda r: r.project_id == "proj_a"),
        (MetricsScope("org", "org_1"), lambda r: r.org_id == "org_1"),
        (MetricsScope("global"), lambda r: True),
    ],
)
async def test_totals_groups_and_series_match_a_reference(
    db: Database, scope: MetricsScope, keep: Callable[[UsageRecord], bool]
) -> None:
    records = seeded_records()
    await insert_usage(db, records)
    start, end = START + HOUR // 2, START + 5 * HOUR  # cuts into the first and last hours
    selected = [r for r in records if keep(r) and start <= r.created_at < end]
    for group_by, column in (("model", "model"), ("key", "key_id"), ("status", "status")):
        metrics = await usage_metrics(
            db, scope, start_ms=start, end_ms=end, bucket_ms=HOUR, group_by=group_by
        )
        assert_same(metrics.totals, reference(selected))
        expected = by(selected, lambda r, column=column: getattr(r, column))
        assert {g.key for g in metrics.groups} == set(expected)
        for group in metrics.groups:
            assert_same(group.aggregate, reference(expected[group.key]))
        requests = [g.aggregate.requests for g in metrics.groups]
        assert requests == sorted(requests, reverse=True) and not metrics.groups_truncated
    buckets = by(selected, lambda r: r.created_at // HOUR)
    assert set(metrics.series) == set(buckets)
    for index, aggregate in metrics.series.items():
        assert_same(aggregate, reference(buckets[index]))


async def test_groups_are_capped_largest_first(db: Database) -> None:
    records = [
        make_record(model=f"model-{i}", created_at=START + i, latency_ms=10 + i)
        for i in range(5)
        for _ in range(i + 1)
    ]
    await insert_usage(db, records)
    metrics = await usage_metrics(
        db,
        MetricsScope("project", "proj_a"),
        start_ms=START,
        end_ms=START + HOUR,
        bucket_ms=None,
        group_by="model",
        max_groups=2,
    )
    assert [g.key for g in metrics.groups] == ["model-4", "model-3"] and metrics.groups_truncated
    assert metrics.totals.requests == 15 and metrics.series == {}


async def test_an_empty_range_has_zero_totals_and_no_latency(db: Database) -> None:
    await insert_usage(db, [make_record(created_at=START)])
    metrics = await usage_metrics(
        db,
        MetricsScope("project", "proj_a"),
        start_ms=START + 1,
        end_ms=START + HOUR,
        bucket_ms=60_000,
        group_by="provider",
    )
    assert metrics.totals == Aggregate() and metrics.groups == () and metrics.series == {}


async def test_one_record_and_its_percentiles(db: Database) -> None:
    await insert_usage(db, [make_record(created_at=START, latency_ms=250)])
    metrics = await usage_metrics(
        db, MetricsScope("org", "org_a"), start_ms=START, end_ms=START + 1, bucket_ms=HOUR
    )
    assert metrics.totals.latency_ms == (250.0, 250.0, 250.0)
    assert metrics.series[START // HOUR].requests == 1


def test_reference_percentile_is_postgres_percentile_cont() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile_cont(values, 0.5) == 2.5
    assert percentile_cont(values, 0.95) == pytest.approx(3.85)
    assert percentile_cont([7.0], 0.99) == 7.0
