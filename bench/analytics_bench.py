"""Seeds 1,000,000 usage records in PostgreSQL, times migration 0004 and 30-day analytics from rollups and raw rows.

Usage: python bench/analytics_bench.py [--records N] [--runs N] [--admin-url URL] [--keep]

The records belong to one organisation with ten projects, spread evenly over the last 30 days and
inserted in time order (as the usage writer appends them), before migration 0004 (so its backfill
is timed on them). Writes are timed in batches of 500 (the usage writer's default) without and with
the rollup triggers. Then each query runs through the store function ``GET /v1/metrics`` uses, with
the response rendering, from the rollups and with ``exact=True`` (raw rows, percentile_cont): once
to warm up, then ``--runs`` times; min, median and max are printed, and the largest relative gap
between the two paths' percentiles (their counters must be equal).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnigate.analytics.params import MetricsQuery
from omnigate.analytics.render import render_metrics
from omnigate.store.analytics import Aggregate, MetricsScope, UsageMetrics, usage_metrics
from omnigate.store.database import Database
from omnigate.store.migrate import downgrade, upgrade
from omnigate.store.records import now_ms
from omnigate.store.usage import count_usage, insert_usage
from omnigate.usage.records import UsageRecord

DAY_MS = 86_400_000
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro"),
    ("azure", "azure/chat-deployment"),
    ("openai", "o3-mini"),
)
STATUSES = ("ok",) * 90 + ("error",) * 4 + ("cache_hit",) * 4 + ("cancelled", "truncated")
BATCH = 10_000
BEFORE_ROLLUPS = "0003_multikey_monthly_meta"


def records(count: int, org_id: str, projects: list[str], end_ms: int) -> Iterator[list[UsageRecord]]:
    rng = random.Random(42)
    keys = {p: [f"key_{p[-6:]}_{i}" for i in range(3)] for p in projects}
    start_ms = end_ms - 30 * DAY_MS
    step = (end_ms - start_ms - 1) / count
    batch: list[UsageRecord] = []
    for i in range(count):
        project = rng.choice(projects)
        provider, model = rng.choice(MODELS)
        status = rng.choice(STATUSES)
        input_tokens = int(rng.lognormvariate(7, 1))
        output_tokens = int(rng.lognormvariate(5, 1))
        batch.append(
            UsageRecord(
                request_id=f"req_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                org_id=org_id,
                project_id=project,
                key_id=rng.choice(keys[project]),
                provider=provider,
                model=model,
                status=status,
                http_status=200 if status in ("ok", "cache_hit", "truncated") else 502,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=input_tokens // 4 if i % 3 == 0 else 0,
                reasoning_tokens=output_tokens // 5 if model == "o3-mini" else 0,
                cost_micros=None
                if model == "azure/chat-deployment"
                else input_tokens * 3 + output_tokens * 12,
                latency_ms=max(1, int(rng.lognormvariate(6.8, 0.9))),
                stream=i % 2 == 0,
                cached=status == "cache_hit",
                fallback_used=i % 97 == 0,
                attempts=1 + (i % 53 == 0),
                created_at=start_ms + int(i * step),
            )
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed(url: str, count: int, end_ms: int) -> tuple[str, list[str]]:
    org_id = f"org_{uuid.uuid4().hex}"
    projects = [f"proj_{uuid.uuid4().hex}" for _ in range(10)]
    db = Database(url)
    await db.connect()
    try:
        started = time.perf_counter()
        for batch in records(count, org_id, projects, end_ms):
            await insert_usage(db, batch)
        print(f"seeded {await count_usage(db):,} records in {time.perf_counter() - started:.1f}s")
    finally:
        await db.disconnect()
    return org_id, projects


async def write_rate(url: str, end_ms: int, label: str, count: int = 20_000) -> None:
    """Rows per second for ``count`` records of another organisation, in batches of 500."""
    db = Database(url)
    await db.connect()
    try:
        org_id = f"org_{uuid.uuid4().hex}"
        projects = [f"proj_{uuid.uuid4().hex}" for _ in range(10)]
        started = time.perf_counter()
        for batch in records(count, org_id, projects, end_ms):
            for chunk in range(0, len(batch), 500):
                await insert_usage(db, batch[chunk : chunk + 500])
        elapsed = time.perf_counter() - started
        print(f"writes {label:<17} {count:,} records in batches of 500: {count / elapsed:8,.0f} records/s")
    finally:
        await db.disconnect()


async def timed(db: Database, scope: MetricsScope, query: MetricsQuery, runs: int, exact: bool) -> Timing:
    timings = []
    for run in range(runs + 1):
        started = time.perf_counter()
        metrics = await usage_metrics(
            db,
            scope,
            start_ms=query.start_ms,
            end_ms=query.end_ms,
            bucket_ms=query.bucket_ms,
            group_by=query.group_by,
            exact=exact,
        )
        document = render_metrics(scope, query, metrics)
        if run:  # the first run warms caches
            timings.append(time.perf_counter() - started)
    return Timing(metrics, document, timings)


@attrs.frozen
class Timing:
    metrics: UsageMetrics
    document: dict[str, Any]
    seconds: list[float]

    def summary(self) -> str:
        low, mid, high = min(self.seconds), statistics.median(self.seconds), max(self.seconds)
        return f"{low * 1000:7.1f} {mid * 1000:7.1f} {high * 1000:7.1f}"


def aggregates(metrics: UsageMetrics) -> list[Aggregate]:
    return [
        metrics.totals,
        *(g.aggregate for g in metrics.groups),
        *(metrics.series[i] for i in sorted(metrics.series)),
    ]


def percentile_gap(rolled: UsageMetrics, raw: UsageMetrics) -> float:
    """The largest relative difference between the two paths' percentiles; the counters must be equal."""
    worst = 0.0
    for a, b in zip(aggregates(rolled), aggregates(raw), strict=True):
        assert attrs.evolve(a, latency_ms=None) == attrs.evolve(b, latency_ms=None), "counters differ"
        for x, y in zip(a.latency_ms or (), b.latency_ms or (), strict=True):
            worst = max(worst, abs(x - y) / y if y else 0.0)
    return worst


async def measure(url: str, org_id: str, projects: list[str], end_ms: int, runs: int) -> None:
    start_ms = end_ms - 30 * DAY_MS
    org, project = MetricsScope("org", org_id), MetricsScope("project", projects[0])
    cases = [
        ("project", project, "1h", "model"),
        ("project", project, "1d", None),
        ("project", project, "1h", "key"),
        ("org", org, "1h", "project"),
        ("org", org, "1d", "model"),
        ("org", org, "1h", "key"),
        ("org", org, "1h", "status"),
    ]
    db = Database(url)
    await db.connect()
    try:
        print(
            f"{'scope':<8} {'bucket':<6} {'group_by':<8} {'rows':>9} {'groups':>6} {'buckets':>7}"
            f"   rollups min/med/max ms   raw rows min/med/max ms   speed-up  p-gap"
        )
        for label, scope, bucket, group_by in cases:
            query = MetricsQuery(start_ms, end_ms, bucket, group_by)
            rolled = await timed(db, scope, query, runs, exact=False)
            raw = await timed(db, scope, query, runs, exact=True)
            speedup = statistics.median(raw.seconds) / statistics.median(rolled.seconds)
            print(
                f"{label:<8} {bucket:<6} {group_by or '-':<8} {rolled.document['totals']['requests']:>9,}"
                f" {len(rolled.document['groups']):>6} {len(rolled.document['timeseries']):>7}"
                f"   {rolled.summary()}   {raw.summary()}   {speedup:7.1f}x  {percentile_gap(rolled.metrics, raw.metrics):.4f}"
            )
    finally:
        await db.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args()
    name = f"omnigate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        downgrade(url, to=BEFORE_ROLLUPS)
        end_ms = now_ms()
        org_id, projects = asyncio.run(seed(url, args.records, end_ms))
        asyncio.run(write_rate(url, end_ms, "without rollups"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE usage_records")  # what autovacuum does soon after a bulk load
        started = time.perf_counter()
        upgrade(url)
        print(f"migration 0004 on {args.records + 20_000:,} records: {time.perf_counter() - started:.1f}s")
        asyncio.run(write_rate(url, end_ms, "with rollups"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE usage_records")
            conn.execute("VACUUM ANALYZE usage_rollups")
        asyncio.run(measure(url, org_id, projects, end_ms, args.runs))
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
