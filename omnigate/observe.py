"""What a finished request looks like to observers, and how observers are called."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import attrs

logger = logging.getLogger("omnigate.observe")


@attrs.frozen
class RequestOutcome:
    """One finished HTTP request, handed to every request observer."""

    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float
    org_id: str | None = None
    project_id: str | None = None
    key_id: str | None = None
    record: Any = None
    """The chat request's UsageRecord (model, provider, tokens, cost, status), or None for other routes."""
    upstream_ms: float | None = None
    """Time spent waiting on providers; ``duration_ms - upstream_ms`` is the gateway's own overhead."""


Observer = Callable[[RequestOutcome], None]


def notify(observers: Sequence[Observer], outcome: RequestOutcome) -> None:
    """Call each observer directly; one that raises is logged and does not affect the others."""
    for observer in observers:
        try:
            observer(outcome)
        except Exception:
            logger.exception("request observer %r failed", observer)
