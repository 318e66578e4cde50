"""Analytics from the hourly rollups (PostgreSQL, migration 0004): whole hours from ``usage_rollups``, edges raw."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "BINS",
    "HOUR_MS",
    "MIN_HOURS",
    "PENDING_SQL",
    "hours_covered",
    "rollup_sql",
]

HOUR_MS = 3_600_000
# Latency histogram bins per rollup row (``b0``..``b288``); fixed by migration 0004.
BINS = 289
# Ranges with fewer whole hours scan raw rows: cheap, and their percentiles stay exact.
MIN_HOURS = 24
# Rows of organisation-hours the migration has not rolled up yet: until none is left, raw rows answer.
PENDING_SQL = "SELECT EXISTS (SELECT 1 FROM usage_rollups_pending)"

_COUNTERS = (
    "requests",
    "errors",
    "cache_hits",
    "fallbacks",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micros",
    "unpriced",
)
_BIN_COLUMNS = ", ".join(f"b{i}" for i in range(BINS))
_EDGE_BINS = ", ".join(f"NULLIF(h[{i + 1}], 0) AS b{i}" for i in range(BINS))
_MERGED = ",\n    ".join(
    [f"SUM({name}) AS {name}" for name in _COUNTERS]
    + ["MIN(latency_min) AS latency_min", "MAX(latency_max) AS latency_max"]
)
_MERGED_BINS = "ARRAY[" + ", ".join(f"SUM(b{i})" for i in range(BINS)) + "]"
_PERCENTILES = (
    "usage_latency_percentiles({bins}, CAST({total} AS BIGINT), {low}, {high},"
    " CAST(ARRAY[0.5, 0.95, 0.99] AS DOUBLE PRECISION[])) AS latency"
)

# The counters over raw usage records, as the raw-row analytics and the rollups' edge hours both read
# them. "errors" are requests that failed or broke mid-stream; client cancellations are not errors.
RECORD_SUMS = """COUNT(*) AS requests,
    SUM(CASE WHEN status IN ('error', 'truncated') THEN 1 ELSE 0 END) AS errors,
    SUM(CASE WHEN status = 'cache_hit' THEN 1 ELSE 0 END) AS cache_hits,
    SUM(fallback_used) AS fallbacks,
    SUM(input_tokens) AS input_tokens,
    SUM(output_tokens) AS output_tokens,
    SUM(cache_read_tokens) AS cache_read_tokens,
    SUM(cache_write_tokens) AS cache_write_tokens,
    SUM(reasoning_tokens) AS reasoning_tokens,
    SUM(cost_micros) AS cost_micros,
    SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END) AS unpriced"""

# Records with the same counters the rollups hold (a rollup's cost is 0, never NULL, when nothing in
# the hour is priced); the histogram comes from the same bin function.
_EDGES = """
    SELECT part, requests, errors, cache_hits, fallbacks, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, reasoning_tokens, COALESCE(cost_micros, 0) AS cost_micros, unpriced,
        latency_min, latency_max, {edge_bins}
    FROM (
        SELECT {raw_part} AS part, {record_sums},
            MIN(latency_ms) AS latency_min, MAX(latency_ms) AS latency_max,
            usage_latency_histogram(array_agg(latency_ms)) AS h
        FROM usage_records
        WHERE {raw_scope}((created_at >= :start AND created_at < :first_ms)
            OR (created_at >= :last_ms AND created_at < :end))
        GROUP BY 1
    ) edge"""
_SOURCE = """
WITH src AS (
    SELECT {rollup_part} AS part, {counters}, latency_min, latency_max, {bin_columns}
    FROM usage_rollups
    WHERE {rollup_scope} AND hour >= :first_hour AND hour < :end_hour
    UNION ALL{edges}
)"""
_TOTALS = """{source}
SELECT {merged}, {percentiles} FROM src
"""
_GROUPS = """{source}, merged AS (
    SELECT GROUPING(part) AS is_total, part AS group_key, {merged}, {merged_bins} AS bins
    FROM src GROUP BY GROUPING SETS ((part), ())
    ORDER BY is_total DESC, requests DESC, group_key
    LIMIT :limit
)
SELECT is_total, group_key, {counters}, {group_percentiles}
FROM merged ORDER BY is_total DESC, requests DESC, group_key
"""
_SERIES = """{source}
SELECT part AS bucket, {merged}, {percentiles}
FROM src GROUP BY part ORDER BY part
"""

# Which rollup rows answer a grouping: organisation-wide rows (project_id '') for the whole-org
# dimensions, project rows for projects and keys (keys belong to one project).
_ORG_LEVEL = "project_id = ''"
_PROJECT_LEVEL = "project_id <> ''"
_GROUPS_BY: Mapping[str | None, tuple[str, str, bool]] = {
    # group_by: (rollup dimension filter, rollup group key, organisation-wide rows in org/global scope)
    None: ("dimension = ''", "0", True),
    "model": ("dimension = 'model'", "value", True),
    "provider": ("dimension = 'provider'", "value", True),
    "status": ("dimension = 'status'", "value", True),
    "key": ("dimension IN ('key', 'no_key')", "CASE WHEN dimension = 'key' THEN value END", False),
    "project": ("dimension = ''", "project_id", False),
}
_RAW_GROUPS: Mapping[str | None, str] = {
    None: "0",
    "model": "model",
    "provider": "provider",
    "status": "status",
    "key": "key_id",
    "project": "project_id",
}
_RAW_SCOPES = {"global": "", "org": "org_id = :scope_id AND ", "project": "project_id = :scope_id AND "}


def _rollup_scope(scope: str, group_by: str | None) -> str:
    dimension, _, org_wide = _GROUPS_BY[group_by]
    if scope == "project":
        return "project_id = :scope_id AND " + dimension
    level = _ORG_LEVEL if org_wide else _PROJECT_LEVEL
    owner = "org_id = :scope_id AND " if scope == "org" else ""
    return owner + level + " AND " + dimension


def _fill(template: str, parts: Mapping[str, str]) -> str:
    for name, fragment in parts.items():
        template = template.replace("{" + name + "}", fragment)
    return template


def _build(scope: str, group_by: str | None, kind: str) -> str:
    series = kind == "series"
    rollup_part = "hour / :bucket_hours" if series else _GROUPS_BY[group_by][1]
    raw_part = "created_at / :bucket_ms" if series else _RAW_GROUPS[group_by]
    edges = _fill(
        _EDGES,
        {
            "edge_bins": _EDGE_BINS,
            "raw_part": raw_part,
            "raw_scope": _RAW_SCOPES[scope],
            "record_sums": RECORD_SUMS,
        },
    )
    source = _fill(
        _SOURCE,
        {
            "rollup_part": rollup_part,
            "counters": ", ".join(_COUNTERS),
            "bin_columns": _BIN_COLUMNS,
            "rollup_scope": _rollup_scope(scope, None if series else group_by),
            "edges": edges,
        },
    )
    template = {"totals": _TOTALS, "groups": _GROUPS, "series": _SERIES}[kind]
    return _fill(
        template,
        {
            "source": source,
            "merged_bins": _MERGED_BINS,
            "merged": _MERGED,
            "counters": ", ".join(_COUNTERS),
            "percentiles": _fill(
                _PERCENTILES,
                {
                    "bins": _MERGED_BINS,
                    "total": "SUM(requests)",
                    "low": "MIN(latency_min)",
                    "high": "MAX(latency_max)",
                },
            ),
            "group_percentiles": _fill(
                _PERCENTILES,
                {"bins": "bins", "total": "requests", "low": "latency_min", "high": "latency_max"},
            ),
        },
    )


_STATEMENTS = [
    *((scope, None, kind) for scope in _RAW_SCOPES for kind in ("totals", "series")),
    *((scope, group, "groups") for scope in _RAW_SCOPES for group in _RAW_GROUPS if group),
]
_SQL: dict[tuple[str, str | None, str], str] = {key: _build(*key) for key in _STATEMENTS}


def rollup_sql(scope: str, group_by: str | None, kind: str) -> str:
    """The statement for ``kind``: ``totals`` (no grouping), ``groups`` (totals first) or ``series``."""
    return _SQL[(scope, group_by, kind)]


def hours_covered(start_ms: int, end_ms: int, bucket_ms: int | None) -> tuple[int, int] | None:
    """The whole hours [first, end) rollups answer for [start_ms, end_ms), or None for raw rows only.

    Rollups need whole-hour buckets (1 h, 1 d) and at least :data:`MIN_HOURS` whole hours; the partial
    hours at either edge are then read from raw rows.
    """
    if bucket_ms is not None and bucket_ms % HOUR_MS:
        return None
    first, end = -(-start_ms // HOUR_MS), end_ms // HOUR_MS
    if end - first < MIN_HOURS:
        return None
    return first, end
