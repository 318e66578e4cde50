"""Usage analytics SQL: totals, top groups and a bucketed timeseries over ``usage_records``, with latency percentiles."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from omnigate.store.database import Database
from omnigate.store.rollups import HOUR_MS, PENDING_SQL, RECORD_SUMS, hours_covered, rollup_sql

__all__ = [
    "DIMENSIONS",
    "PERCENTILES",
    "Aggregate",
    "Group",
    "MetricsScope",
    "UsageMetrics",
    "percentile_cont",
    "usage_metrics",
]

ScopeKind = Literal["global", "org", "project"]
PERCENTILES = (0.5, 0.95, 0.99)

# group_by name -> column: the only column names that fill the templates below.
DIMENSIONS: Mapping[str, str] = {
    "model": "model",
    "provider": "provider",
    "key": "key_id",
    "status": "status",
    "project": "project_id",
}
_SCOPE_FILTERS: Mapping[ScopeKind, str] = {
    "global": "",
    "org": "org_id = :scope_id AND ",
    "project": "project_id = :scope_id AND ",
}
_BUCKET = "created_at / :bucket_ms"

# The fractions are PERCENTILES.
_PG_LATENCY = "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS latency"
_FILTER = "{scope}created_at >= :start AND created_at < :end"

# PostgreSQL computes percentile_cont in the database: one statement for the totals and the groups
# (GROUPING SETS), one for the timeseries. Sorting the latencies is what costs at a million rows, so
# each runs with JIT off (compiling costs more than it saves here) and enough work_mem to sort in memory.
_PG_SESSION = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")
_PG_TOTALS_SQL = "SELECT {sums}, {latency} FROM usage_records WHERE {filter}"
_PG_GROUPS_SQL = """
SELECT GROUPING({dim}) AS is_total, {dim} AS group_key, {sums}, {latency}
FROM usage_records WHERE {filter}
GROUP BY GROUPING SETS (({dim}), ())
ORDER BY is_total DESC, requests DESC, group_key
LIMIT :limit
"""
_PG_SERIES_SQL = """
SELECT {bucket} AS bucket, {sums}, {latency}
FROM usage_records WHERE {filter}
GROUP BY 1 ORDER BY 1
"""

# SQLite has no percentile_cont: sums come from plain GROUP BY statements, percentiles from a window
# query returning per partition only the two order statistics percentile_cont interpolates between
# (0-based ranks floor(p * (n - 1)) and the next); `_interpolate` finishes exactly as PostgreSQL does.
_SQLITE_TOTALS_SQL = "SELECT {sums} FROM usage_records WHERE {filter}"
_SQLITE_GROUPS_SQL = """
SELECT {dim} AS group_key, {sums}
FROM usage_records WHERE {filter}
GROUP BY {dim} ORDER BY requests DESC, group_key
LIMIT :limit
"""
_SQLITE_SERIES_SQL = """
SELECT {bucket} AS bucket, {sums}
FROM usage_records WHERE {filter}
GROUP BY 1 ORDER BY 1
"""
_SQLITE_ORDER_STATS_SQL = """
WITH ranked AS (
    SELECT {part} AS part, latency_ms AS v,
           ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY latency_ms) - 1 AS i,
           COUNT(*) OVER (PARTITION BY {part}) AS n
    FROM usage_records WHERE {filter}
)
SELECT part, n, i, v FROM ranked
WHERE i IN (
    CAST(0.5 * (n - 1) AS INTEGER), CAST(0.5 * (n - 1) AS INTEGER) + 1,
    CAST(0.95 * (n - 1) AS INTEGER), CAST(0.95 * (n - 1) AS INTEGER) + 1,
    CAST(0.99 * (n - 1) AS INTEGER), CAST(0.99 * (n - 1) AS INTEGER) + 1
)
"""

# Everything that may fill a placeholder: fixed fragments and whitelisted column names, never input.
_FRAGMENTS = frozenset(
    {*DIMENSIONS.values(), *_SCOPE_FILTERS.values(), _BUCKET, "0", RECORD_SUMS, _PG_LATENCY}
)


def _render(template: str, scope: ScopeKind, **parts: str) -> str:
    """Fill a template's placeholders with fragments from the fixed set (at import time only)."""
    parts = {
        "scope": _SCOPE_FILTERS[scope],
        "sums": RECORD_SUMS,
        "latency": _PG_LATENCY,
        "bucket": _BUCKET,
        **parts,
    }
    if not set(parts.values()) <= _FRAGMENTS:
        raise ValueError("only whitelisted SQL fragments may fill a template")
    sql = template.replace("{filter}", _FILTER)
    for name, fragment in parts.items():
        sql = sql.replace("{" + name + "}", fragment)
    return sql


_SCOPES: tuple[ScopeKind, ...] = ("global", "org", "project")
_DIMENSION_KEYS = tuple((scope, dim) for scope in _SCOPES for dim in DIMENSIONS)
_PG_TOTALS = {scope: _render(_PG_TOTALS_SQL, scope) for scope in _SCOPES}
_PG_GROUPS = {(s, d): _render(_PG_GROUPS_SQL, s, dim=DIMENSIONS[d]) for s, d in _DIMENSION_KEYS}
_PG_SERIES = {scope: _render(_PG_SERIES_SQL, scope) for scope in _SCOPES}
_SQLITE_TOTALS = {scope: _render(_SQLITE_TOTALS_SQL, scope) for scope in _SCOPES}
_SQLITE_GROUPS = {(s, d): _render(_SQLITE_GROUPS_SQL, s, dim=DIMENSIONS[d]) for s, d in _DIMENSION_KEYS}
_SQLITE_SERIES = {scope: _render(_SQLITE_SERIES_SQL, scope) for scope in _SCOPES}
_SQLITE_TOTAL_STATS = {scope: _render(_SQLITE_ORDER_STATS_SQL, scope, part="0") for scope in _SCOPES}
_SQLITE_GROUP_STATS = {
    (s, d): _render(_SQLITE_ORDER_STATS_SQL, s, part=DIMENSIONS[d]) for s, d in _DIMENSION_KEYS
}
_SQLITE_SERIES_STATS = {scope: _render(_SQLITE_ORDER_STATS_SQL, scope, part=_BUCKET) for scope in _SCOPES}


@attrs.frozen
class MetricsScope:
    """Whose usage: everything (``global``), one organisation or one project."""

    kind: ScopeKind
    id: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.kind == "global") != (self.id is None):
            raise ValueError("a global scope has no id; org and project scopes need one")


@attrs.frozen
class Aggregate:
    """Counters of a set of usage records; ``latency_ms`` holds p50, p95, p99 (None when empty)."""

    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int = 0
    unpriced: int = 0
    latency_ms: tuple[float, float, float] | None = None


@attrs.frozen
class Group:
    key: str | None
    aggregate: Aggregate


@attrs.frozen
class UsageMetrics:
    """Totals, the largest groups (by requests) and the non-empty buckets (bucket index → aggregate)."""

    totals: Aggregate
    groups: tuple[Group, ...]
    groups_truncated: bool
    series: Mapping[int, Aggregate]


async def usage_metrics(
    db: Database,
    scope: MetricsScope,
    *,
    start_ms: int,
    end_ms: int,
    bucket_ms: int | None,
    group_by: str | None = None,
    max_groups: int = 1000,
    exact: bool = False,
) -> UsageMetrics:
    """Aggregate ``scope``'s records created in [start_ms, end_ms).

    Buckets are ``created_at // bucket_ms`` (aligned to the epoch, so UTC minutes, hours and days);
    ``bucket_ms`` None skips the timeseries. ``group_by`` is a key of :data:`DIMENSIONS`; at most
    ``max_groups`` groups are returned, the largest by requests.

    On PostgreSQL, hourly or daily buckets (or none) over at least a day of whole hours are read from
    the hourly rollups: counters are exact, latency percentiles come from merged histograms (within
    1/32 of the exact value). ``exact`` (and every other case, and SQLite) scans the raw rows.
    """
    if group_by is not None and group_by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {group_by!r}")
    if (bucket_ms is not None and bucket_ms <= 0) or end_ms <= start_ms:
        raise ValueError("bucket_ms must be positive and end_ms after start_ms")
    values: dict[str, Any] = {"start": start_ms, "end": end_ms}
    if scope.id is not None:
        values["scope_id"] = scope.id
    if db.dialect == "sqlite":
        return await _sqlite(db, scope.kind, values, bucket_ms, group_by, max_groups)
    limit = {"limit": max_groups + 2}  # the total row, the groups, and one more to detect truncation
    hours = None if exact else hours_covered(start_ms, end_ms, bucket_ms)
    if hours is not None and not await db.fetch_val(PENDING_SQL):
        first, end = hours
        values.update(first_hour=first, end_hour=end, first_ms=first * HOUR_MS, last_ms=end * HOUR_MS)
        head = (rollup_sql(scope.kind, None, "totals"), values)
        if group_by is not None:
            head = (rollup_sql(scope.kind, group_by, "groups"), {**values, **limit})
        series = None
        if bucket_ms is not None:
            bucketed = {**values, "bucket_ms": bucket_ms, "bucket_hours": bucket_ms // HOUR_MS}
            series = (rollup_sql(scope.kind, None, "series"), bucketed)
        return await _postgres(db, head, series, max_groups)
    head = (_PG_TOTALS[scope.kind], values)
    if group_by is not None:
        head = (_PG_GROUPS[(scope.kind, group_by)], {**values, **limit})
    series = None if bucket_ms is None else (_PG_SERIES[scope.kind], {**values, "bucket_ms": bucket_ms})
    return await _postgres(db, head, series, max_groups)


Statement = tuple[str, Mapping[str, Any]]


async def _pg_fetch(db: Database, statement: Statement) -> list[dict[str, Any]]:
    query, values = statement
    async with db.transaction() as tx:
        for setting in _PG_SESSION:
            await tx.execute(setting)
        return await tx.fetch_all(query, values)


async def _postgres(db: Database, head: Statement, series: Statement | None, max_groups: int) -> UsageMetrics:
    series_rows: list[dict[str, Any]] = []
    if series is None:
        head_rows = await _pg_fetch(db, head)
    else:  # on two pooled connections, so the grouped and the bucketed aggregation run side by side
        head_rows, series_rows = await asyncio.gather(_pg_fetch(db, head), _pg_fetch(db, series))
    totals = _aggregate(head_rows[0], _latency(head_rows[0]))  # GROUPING SETS: the total sorts first
    groups = [Group(_key(row["group_key"]), _aggregate(row, _latency(row))) for row in head_rows[1:]]
    return UsageMetrics(
        totals,
        tuple(groups[:max_groups]),
        len(groups) > max_groups,
        {int(row["bucket"]): _aggregate(row, _latency(row)) for row in series_rows},
    )


async def _sqlite(
    db: Database,
    scope: ScopeKind,
    values: dict[str, Any],
    bucket_ms: int | None,
    group_by: str | None,
    max_groups: int,
) -> UsageMetrics:
    total_row = await db.fetch_one(_SQLITE_TOTALS[scope], values)
    assert total_row is not None  # an aggregate without GROUP BY always yields one row
    total_stats = _percentiles(await db.fetch_all(_SQLITE_TOTAL_STATS[scope], values))
    totals = _aggregate(total_row, total_stats.get(0))
    groups: list[Group] = []
    if group_by is not None:
        limited = {**values, "limit": max_groups + 1}
        group_rows = await db.fetch_all(_SQLITE_GROUPS[(scope, group_by)], limited)
        stats = _percentiles(await db.fetch_all(_SQLITE_GROUP_STATS[(scope, group_by)], values))
        groups = [
            Group(_key(row["group_key"]), _aggregate(row, stats.get(row["group_key"]))) for row in group_rows
        ]
    series: dict[int, Aggregate] = {}
    if bucket_ms is not None:
        bucketed = {**values, "bucket_ms": bucket_ms}
        series_stats = _percentiles(await db.fetch_all(_SQLITE_SERIES_STATS[scope], bucketed))
        for row in await db.fetch_all(_SQLITE_SERIES[scope], bucketed):
            series[int(row["bucket"])] = _aggregate(row, series_stats.get(row["bucket"]))
    return UsageMetrics(totals, tuple(groups[:max_groups]), len(groups) > max_groups, series)


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def _latency(row: Mapping[str, Any]) -> tuple[float, float, float] | None:
    latency = row.get("latency")
    if latency is None:
        return None
    p50, p95, p99 = (float(v) for v in latency)
    return (p50, p95, p99)


def _aggregate(row: Mapping[str, Any], latency: tuple[float, float, float] | None) -> Aggregate:
    def count(name: str) -> int:
        return int(row[name] or 0)

    requests = count("requests")
    return Aggregate(
        requests=requests,
        errors=count("errors"),
        cache_hits=count("cache_hits"),
        fallbacks=count("fallbacks"),
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_tokens"),
        cache_write_tokens=count("cache_write_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        cost_micros=count("cost_micros"),
        unpriced=count("unpriced"),
        latency_ms=latency if requests else None,
    )


def _percentiles(rows: Iterable[Mapping[str, Any]]) -> dict[Any, tuple[float, float, float]]:
    """Partition → (p50, p95, p99) from the order statistics the SQLite window query selected."""
    ranks: dict[Any, tuple[int, dict[int, float]]] = {}
    for row in rows:
        n, found = ranks.setdefault(row["part"], (int(row["n"]), {}))
        found[int(row["i"])] = float(row["v"])
    result: dict[Any, tuple[float, float, float]] = {}
    for part, (n, found) in ranks.items():
        p50, p95, p99 = (_interpolate(found, n, p) for p in PERCENTILES)
        result[part] = (p50, p95, p99)
    return result


def _interpolate(values: Mapping[int, float], n: int, p: float) -> float:
    position = p * (n - 1)
    low = math.floor(position)
    lower = values[low]
    upper = values.get(low + 1, lower)
    return lower + (position - low) * (upper - lower)


def percentile_cont(sorted_values: Sequence[float], p: float) -> float:
    """PostgreSQL's percentile_cont over already sorted values (linear interpolation between ranks)."""
    if not sorted_values:
        raise ValueError("no values")
    return _interpolate(dict(enumerate(sorted_values)), len(sorted_values), p)
