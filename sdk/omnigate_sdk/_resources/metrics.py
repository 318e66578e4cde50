"""Traffic analytics (``/v1/metrics``): totals, groups and a gap-filled timeseries for the caller's project."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Literal

from omnigate_sdk._models.metrics import MetricsReport
from omnigate_sdk._resources._base import AsyncAPIResource, CallOptions, SyncAPIResource, request_options

if TYPE_CHECKING:
    from typing_extensions import Unpack

GroupBy = Literal["model", "provider", "key", "status", "project"]
Bucket = Literal["1m", "5m", "1h", "1d"]
TimeArg = str | datetime.datetime | None


def time_param(value: TimeArg) -> str | None:
    """ISO 8601 for datetimes (naive ones are taken as UTC); strings (``24h``, ``7d``, ISO) as given."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


def metrics_params(
    from_: TimeArg, to: TimeArg, group_by: str | None, bucket: str | None
) -> dict[str, str | None]:
    return {"from": time_param(from_), "to": time_param(to), "group_by": group_by, "bucket": bucket}


class Metrics(SyncAPIResource):
    def get(
        self,
        *,
        from_: TimeArg = None,
        to: TimeArg = None,
        group_by: GroupBy | None = None,
        bucket: Bucket | None = None,
        **options: Unpack[CallOptions],
    ) -> MetricsReport:
        """The project's statistics between ``from_`` and ``to`` (default: the last 24 hours)."""
        params = metrics_params(from_, to, group_by, bucket)
        response = self._client._send(request_options("GET", "/v1/metrics", options, params=params))
        return self._client._parse(response, MetricsReport)


class AsyncMetrics(AsyncAPIResource):
    async def get(
        self,
        *,
        from_: TimeArg = None,
        to: TimeArg = None,
        group_by: GroupBy | None = None,
        bucket: Bucket | None = None,
        **options: Unpack[CallOptions],
    ) -> MetricsReport:
        """The project's statistics between ``from_`` and ``to`` (default: the last 24 hours)."""
        params = metrics_params(from_, to, group_by, bucket)
        response = await self._client._send(request_options("GET", "/v1/metrics", options, params=params))
        return self._client._parse(response, MetricsReport)
