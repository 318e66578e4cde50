"""Parsing of analytics parameters: time ranges (ISO 8601 or relative), buckets and grouping."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping

import attrs

from omnigate.errors import InvalidRequestError

BUCKETS: Mapping[str, int] = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
MAX_BUCKETS = 10_000
DEFAULT_RANGE_MS = 24 * 3_600_000
PROJECT_GROUPS = ("model", "provider", "key", "status")
ORG_GROUPS = (*PROJECT_GROUPS, "project")
QUERY_PARAMS = ("from", "to", "group_by", "bucket")

_RELATIVE = re.compile(r"(\d{1,7})([mhdw])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_MAX_RAW = 64


@attrs.frozen
class MetricsQuery:
    """A validated analytics query: [start_ms, end_ms) in epoch milliseconds, UTC."""

    start_ms: int
    end_ms: int
    bucket: str | None
    """None: no timeseries."""
    group_by: str | None = None

    @property
    def bucket_ms(self) -> int | None:
        return None if self.bucket is None else BUCKETS[self.bucket]

    @property
    def bucket_indices(self) -> range:
        """Every bucket the range touches (buckets are aligned to the epoch: UTC minutes, hours, days)."""
        if self.bucket_ms is None:
            return range(0)
        return range(self.start_ms // self.bucket_ms, (self.end_ms - 1) // self.bucket_ms + 1)


def parse_time(raw: str, param: str, now_ms: int) -> int:
    """``now``, a duration ago (``30m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 date/time (UTC if naive)."""
    text = raw.strip()
    if text.lower() == "now":
        return now_ms
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        return now_ms - int(relative.group(1)) * _UNIT_MS[relative.group(2)]
    if len(text) > _MAX_RAW:
        raise InvalidRequestError(f"{param}: not a time", param=param)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"{param}: expected an ISO 8601 time (2025-01-31T12:00:00Z) or a duration ago such as 24h or 7d",
            param=param,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def default_bucket(span_ms: int) -> str:
    """A bucket giving a readable number of points: minutes up to 2 h, 5 min up to 12 h, hours up to 14 d."""
    if span_ms <= 2 * 3_600_000:
        return "1m"
    if span_ms <= 12 * 3_600_000:
        return "5m"
    if span_ms <= 14 * 86_400_000:
        return "1h"
    return "1d"


def parse_metrics_query(
    items: Iterable[tuple[str, str]], allowed_groups: Iterable[str], now_ms: int
) -> MetricsQuery:
    """Validate query-string pairs; a bad, unknown or repeated parameter is a 400 naming it."""
    params: dict[str, str] = {}
    for name, value in items:
        if name not in QUERY_PARAMS:
            raise InvalidRequestError(
                f"{name}: unknown parameter (allowed: {', '.join(QUERY_PARAMS)})", param=name
            )
        if name in params:
            raise InvalidRequestError(f"{name}: given more than once", param=name)
        params[name] = value
    return build_query(
        since=params.get("from"),
        until=params.get("to"),
        bucket=params.get("bucket"),
        group_by=params.get("group_by"),
        allowed_groups=allowed_groups,
        now_ms=now_ms,
        names=("from", "to", "bucket", "group_by"),
    )


def build_query(
    *,
    since: str | None,
    until: str | None,
    bucket: str | None,
    group_by: str | None,
    allowed_groups: Iterable[str],
    now_ms: int,
    names: tuple[str, str, str, str] = ("from", "to", "bucket", "group_by"),
    series: bool = True,
) -> MetricsQuery:
    """The shared validation of the HTTP API and the CLI (``names`` are the parameters' names in errors).

    ``series`` False: no timeseries (``bucket`` is ignored).
    """
    from_name, to_name, bucket_name, group_name = names
    end_ms = now_ms if until is None else parse_time(until, to_name, now_ms)
    start_ms = end_ms - DEFAULT_RANGE_MS if since is None else parse_time(since, from_name, now_ms)
    if start_ms >= end_ms:
        raise InvalidRequestError(f"{from_name}: must be before {to_name}", param=from_name)
    allowed = tuple(allowed_groups)
    if group_by is not None and group_by not in allowed:
        raise InvalidRequestError(f"{group_name}: must be one of {', '.join(allowed)}", param=group_name)
    if not series:
        return MetricsQuery(start_ms, end_ms, None, group_by)
    if bucket is None:
        bucket = default_bucket(end_ms - start_ms)
    elif bucket not in BUCKETS:
        raise InvalidRequestError(f"{bucket_name}: must be one of {', '.join(BUCKETS)}", param=bucket_name)
    query = MetricsQuery(start_ms, end_ms, bucket, group_by)
    if len(query.bucket_indices) > MAX_BUCKETS:
        raise InvalidRequestError(
            f"{bucket_name}: {len(query.bucket_indices)} buckets of {bucket} in this range; at most "
            f"{MAX_BUCKETS} (use a larger bucket or a shorter range)",
            param=bucket_name,
        )
    return query
