"""Seeds 1,000,000 usage records in PostgreSQL and times 30-day analytics queries (groups + timeseries).

Usage: python bench/analytics_bench.py [--records N] [--admin-url URL] [--keep]

The records belong to one organisation with ten projects, spread evenly over the last 30 days and
inserted in time order (as the usage writer appends them). Timed, through the same store function
``GET /v1/metrics`` uses, with the response rendering:

- project: one project's 30 days (a tenth of the rows), grouped by model, hourly buckets;
- org:     the whole organisation's 30 days (every row), grouped by project, hourly buckets;
- org/day: the same grouped by model, daily buckets.

Each query runs once to warm up, then ``--runs`` times; min, median and max are printed.
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

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnigate.analytics.params import MetricsQuery
from omnigate.analytics.render import render_metrics
from omnigate.store.analytics import MetricsScope, usage_metrics
from omnigate.store.database import Database
from omnigate.store.migrate import upgrade
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


async def timed(db: Database, label: str, scope: MetricsScope, query: MetricsQuery, runs: int) -> None:
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
        )
        document = render_metrics(scope, query, metrics)
        if run:  # the first run warms caches
            timings.append(time.perf_counter() - started)
    print(
        f"{label:<8} rows={document['totals']['requests']:>9,} groups={len(document['groups']):>3} "
        f"buckets={len(document['timeseries']):>4}  min {min(timings) * 1000:7.1f} ms  "
        f"median {statistics.median(timings) * 1000:7.1f} ms  max {max(timings) * 1000:7.1f} ms"
    )


async def measure(url: str, org_id: str, projects: list[str], end_ms: int, runs: int) -> None:
    db = Database(url)
    await db.connect()
    try:
        start_ms = end_ms - 30 * DAY_MS
        await timed(
            db,
            "project",
            MetricsScope("project", projects[0]),
            MetricsQuery(start_ms, end_ms, "1h", "model"),
            runs,
        )
        await timed(
            db, "org", MetricsScope("org", org_id), MetricsQuery(start_ms, end_ms, "1h", "project"), runs
        )
        await timed(
            db, "org/day", MetricsScope("org", org_id), MetricsQuery(start_ms, end_ms, "1d", "model"), runs
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
        end_ms = now_ms()
        org_id, projects = asyncio.run(seed(url, args.records, end_ms))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE usage_records")  # what autovacuum does soon after a bulk load
        asyncio.run(measure(url, org_id, projects, end_ms, args.runs))
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
