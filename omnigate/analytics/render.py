"""Response shaping of analytics: one metrics object per total, group and bucket; empty buckets as zeros."""

from __future__ import annotations

from typing import Any

from omnigate.admin.common import iso_time
from omnigate.analytics.params import MetricsQuery
from omnigate.store.analytics import Aggregate, MetricsScope, UsageMetrics

MICROS_PER_USD = 1_000_000
_EMPTY = Aggregate()


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def render_aggregate(aggregate: Aggregate) -> dict[str, Any]:
    """Counters, rates and latency percentiles (``null`` when there were no requests)."""
    latency = aggregate.latency_ms
    return {
        "requests": aggregate.requests,
        "errors": aggregate.errors,
        "error_rate": _rate(aggregate.errors, aggregate.requests),
        "cache_hits": aggregate.cache_hits,
        "cache_hit_rate": _rate(aggregate.cache_hits, aggregate.requests),
        "fallbacks": aggregate.fallbacks,
        "input_tokens": aggregate.input_tokens,
        "output_tokens": aggregate.output_tokens,
        "cache_read_tokens": aggregate.cache_read_tokens,
        "cache_write_tokens": aggregate.cache_write_tokens,
        "reasoning_tokens": aggregate.reasoning_tokens,
        "total_tokens": aggregate.input_tokens + aggregate.output_tokens,
        "cost_usd": aggregate.cost_micros / MICROS_PER_USD,
        "unpriced_requests": aggregate.unpriced,
        "latency_ms": {
            "p50": None if latency is None else round(latency[0], 3),
            "p95": None if latency is None else round(latency[1], 3),
            "p99": None if latency is None else round(latency[2], 3),
        },
    }


def render_metrics(scope: MetricsScope, query: MetricsQuery, metrics: UsageMetrics) -> dict[str, Any]:
    """The ``/v1/metrics`` document; the timeseries has every bucket of the range, empty ones as zeros."""
    bucket_ms = query.bucket_ms or 0
    return {
        "object": "usage_metrics",
        "scope": {"type": scope.kind, "id": scope.id},
        "from": iso_time(query.start_ms),
        "to": iso_time(query.end_ms),
        "bucket": query.bucket,
        "group_by": query.group_by,
        "totals": render_aggregate(metrics.totals),
        "groups": [{"key": group.key, **render_aggregate(group.aggregate)} for group in metrics.groups],
        "groups_truncated": metrics.groups_truncated,
        "timeseries": [
            {"start": iso_time(index * bucket_ms), **render_aggregate(metrics.series.get(index, _EMPTY))}
            for index in query.bucket_indices
        ],
    }
