"""``GET /v1/metrics`` (the caller's project) and ``GET /v1/admin/orgs/{org_id}/metrics`` (admin key)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.admin.common import json_response, runtime_of
from omnigate.analytics.params import ORG_GROUPS, PROJECT_GROUPS, parse_metrics_query
from omnigate.analytics.render import render_metrics
from omnigate.errors import NotFoundError, ServiceUnavailableError
from omnigate.runtime import Runtime
from omnigate.store import tenants
from omnigate.store.analytics import MetricsScope, usage_metrics
from omnigate.store.records import now_ms
from omnigate.types import SCOPE_PRINCIPAL

MAX_GROUPS = 1000


# Analytics can scan millions of rows: a few at a time per process, so they never take every pooled
# connection from the usage writer and the admin API (each takes two on PostgreSQL).
MAX_CONCURRENT = 2
WAIT_S = 30.0


def _slots(runtime: Runtime) -> asyncio.Semaphore:
    slots = runtime.extras.get("analytics_slots")
    if slots is None:
        slots = runtime.extras["analytics_slots"] = asyncio.Semaphore(MAX_CONCURRENT)
    assert isinstance(slots, asyncio.Semaphore)
    return slots


async def _answer(request: Request, scope: MetricsScope, allowed_groups: Iterable[str]) -> Response:
    query = parse_metrics_query(request.query_params.multi_items(), allowed_groups, now_ms())
    runtime = runtime_of(request)
    slots = _slots(runtime)
    try:
        await asyncio.wait_for(slots.acquire(), WAIT_S)
    except TimeoutError:
        raise ServiceUnavailableError(
            "too many analytics queries are running; try again shortly",
            code="analytics_busy",
            headers={"retry-after": "5"},
        ) from None
    try:
        metrics = await usage_metrics(
            runtime.db,
            scope,
            start_ms=query.start_ms,
            end_ms=query.end_ms,
            bucket_ms=query.bucket_ms,
            group_by=query.group_by,
            max_groups=MAX_GROUPS,
        )
    finally:
        slots.release()
    return json_response(render_metrics(scope, query, metrics))


async def project_metrics(request: Request) -> Response:
    principal = request.scope[SCOPE_PRINCIPAL]
    return await _answer(request, MetricsScope("project", principal.project_id), PROJECT_GROUPS)


async def org_metrics(request: Request) -> Response:
    org_id = request.path_params["org_id"]
    if await tenants.get_org(runtime_of(request).db, org_id) is None:
        raise NotFoundError("no such organization")
    return await _answer(request, MetricsScope("org", org_id), ORG_GROUPS)


routes = [
    Route("/v1/metrics", project_metrics, methods=["GET"]),
    Route("/v1/admin/orgs/{org_id}/metrics", org_metrics, methods=["GET"]),
]
