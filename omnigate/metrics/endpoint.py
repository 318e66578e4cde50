"""``GET /metrics``: the Prometheus text exposition (0.0.4), behind ``METRICS_TOKEN`` when one is set."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate.errors import AuthenticationError
from omnigate.metrics.collectors import GatewayMetrics


def _bearer(request: Request) -> bytes | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip().encode()


def metrics_route(metrics: GatewayMetrics, token: str | None) -> Route:
    """The route; the path is outside /v1, so the auth middleware leaves it to this token check."""
    expected = token.encode() if token else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            presented = _bearer(request)
            if presented is None or not hmac.compare_digest(presented, expected):
                raise AuthenticationError(
                    "the metrics endpoint needs 'Authorization: Bearer <METRICS_TOKEN>'",
                    code="invalid_metrics_token",
                    headers={"www-authenticate": "Bearer"},
                )
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return Route("/metrics", endpoint, methods=["GET"])
