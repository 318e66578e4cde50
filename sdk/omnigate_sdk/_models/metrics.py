"""``/v1/metrics`` and org metrics: totals, per-group and per-bucket statistics of the traffic."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field

from omnigate_sdk._models._base import OmnigateModel


class LatencyPercentiles(OmnigateModel):
    """Request latency percentiles in milliseconds (None when there were no requests)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class MetricsStats(OmnigateModel):
    """Statistics over a set of requests; statistics a newer gateway adds are kept as attributes."""

    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    cache_hits: int = 0
    cache_hit_rate: float = 0.0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_requests: int = 0
    latency_ms: LatencyPercentiles = LatencyPercentiles()


class MetricsGroup(MetricsStats):
    """The statistics of one group: ``key`` is the model, provider, key id, status or project id."""

    key: str | None = None


class MetricsBucket(MetricsStats):
    """The statistics of one time bucket starting at ``start`` (empty buckets are present, with zeros)."""

    start: datetime | None = None


class MetricsScope(OmnigateModel):
    type: str
    id: str


class MetricsReport(OmnigateModel):
    """Totals, groups (when ``group_by`` was given) and a gap-free timeseries over ``[from_, to)``."""

    object: str = "usage_metrics"
    scope: MetricsScope | None = None
    from_: datetime | None = Field(default=None, validation_alias=AliasChoices("from", "from_"))
    to: datetime | None = None
    bucket: str | None = None
    group_by: str | None = None
    totals: MetricsStats = MetricsStats()
    groups: list[MetricsGroup] = []
    groups_truncated: bool = False
    timeseries: list[MetricsBucket] = []
