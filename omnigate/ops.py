"""Operational endpoints: liveness, readiness (database and Redis) and version."""

from __future__ import annotations

import logging
import platform

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from omnigate import __version__
from omnigate.admin.common import json_response, runtime_of
from omnigate.errors import ServiceUnavailableError

logger = logging.getLogger("omnigate.ops")


async def live(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    runtime = runtime_of(request)
    failing: list[str] = []
    try:
        await runtime.db.ping()
    except Exception as exc:
        logger.warning("readiness: database check failed: %s", type(exc).__name__)
        failing.append("database")
    if runtime.settings.redis_url:
        try:
            await runtime.state.ping()
        except Exception as exc:
            logger.warning("readiness: redis check failed: %s", type(exc).__name__)
            failing.append("redis")
    if failing:
        raise ServiceUnavailableError(f"not ready: {', '.join(failing)} unavailable", code="not_ready")
    checks = {"database": "ok"} | ({"redis": "ok"} if runtime.settings.redis_url else {})
    return json_response({"status": "ready", "checks": checks})


async def version(request: Request) -> Response:
    return json_response({"version": __version__, "python": platform.python_version()})


routes = [
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/version", version, methods=["GET"]),
]
