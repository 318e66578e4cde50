"""Times each request, logs one access line when its body ends, and hands the outcome to observers."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from omnigate.observe import Observer, RequestOutcome, notify
from omnigate.types import (
    SCOPE_OUTCOME,
    SCOPE_PRINCIPAL,
    SCOPE_REQUEST_ID,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
)

logger = logging.getLogger("omnigate.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, observers: Sequence[Observer] = ()) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ended: float | None = None
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status, ended
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = time.perf_counter()  # the client has it all; what runs after is not its latency
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._finish(scope, status, ((ended or time.perf_counter()) - started) * 1000.0)

    def _finish(self, scope: Scope, status: int, duration_ms: float) -> None:
        principal = scope.get(SCOPE_PRINCIPAL)
        chat = scope.get(SCOPE_OUTCOME)
        record = getattr(chat, "record", None)
        upstream_s = getattr(chat, "upstream_s", None)
        outcome = RequestOutcome(
            request_id=scope.get(SCOPE_REQUEST_ID, "-"),
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=round(duration_ms, 3),
            org_id=getattr(principal, "org_id", None),
            project_id=getattr(principal, "project_id", None),
            key_id=getattr(principal, "key_id", None),
            record=record,
            upstream_ms=None if upstream_s is None else round(upstream_s * 1000.0, 3),
        )
        if self.observers:
            notify(self.observers, outcome)
        if not logger.isEnabledFor(logging.INFO):
            return
        extra = {
            "method": outcome.method,
            "path": outcome.path,
            "status": outcome.status,
            "latency_ms": outcome.duration_ms,
            "project": outcome.project_id,
            "key_id": outcome.key_id,
        }
        if record is not None:
            extra.update(
                model=record.model,
                provider=record.provider,
                outcome=record.status,
                attempts=record.attempts,
                cached=record.cached,
                cost_micros=record.cost_micros,
                upstream_ms=outcome.upstream_ms,
            )
        logger.info(
            "%s %s %d %.1fms",
            outcome.method,
            outcome.path,
            outcome.status,
            outcome.duration_ms,
            extra=extra,
        )
