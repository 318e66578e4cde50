"""Response cache: serve a project's repeated deterministic, non-streaming request from shared state."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import orjson

from omnigate import hookimpl
from omnigate.chat.models import ChatResult
from omnigate.converter import converter
from omnigate.plugin.interfaces import RESPONSE_HEADERS, Call, CallNext, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies.response_cache_key import cache_key, is_deterministic
from omnigate.settings import Settings
from omnigate.state.base import SharedState, StateUnavailableError

logger = logging.getLogger("omnigate.policies.response_cache")

CACHE_HEADER = "x-omnigate-cache"
HIT, MISS, BYPASS = "hit", "miss", "bypass"
WARN_EVERY_S = 30.0


class ResponseCachePolicy:
    """Opt-in per gateway (RESPONSE_CACHE_ENABLED) or per request (``cache: true``; ``cache: false``
    opts out). Only deterministic, non-streaming requests are cached (see ``is_deterministic``); the
    key holds the project id, so tenants never share entries. Entries live in the shared state (Redis
    when configured) for ``ttl_s``. A hit sets ``call.state["cached"]`` (billed $0, usage status
    ``cache_hit``) without calling the upstream. Answers from a fallback model are not stored. The
    response says ``x-omnigate-cache: hit | miss``, or ``bypass`` when caching was asked for but the
    request is not cacheable. An unreachable state backend means no caching, never a failed request.
    """

    def __init__(
        self,
        state: SharedState,
        ttl_s: float,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.enabled = enabled
        self._clock = clock
        self._warned_at = -math.inf

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        request = call.request
        if not (self.enabled if request.cache is None else request.cache):
            return await call_next(call)
        project = getattr(call.principal, "project_id", None)
        if not project or not is_deterministic(request):
            result = await call_next(call)
            _set_header(call, BYPASS)
            return result
        key = cache_key(project, call.target, request)
        stored = await self._load(key)
        if stored is not None:
            call.state["cached"] = True
            _set_header(call, HIT)
            return stored
        result = await call_next(call)
        if isinstance(result, ChatResult) and not call.state.get("fallback_used"):
            await self._store(key, result)
        _set_header(call, MISS)
        return result

    async def _load(self, key: str) -> ChatResult | None:
        try:
            raw = await self.state.get(key)
        except StateUnavailableError as exc:
            self._warn(exc)
            return None
        if raw is None:
            return None
        try:
            result = converter.loads(raw, ChatResult)
        except (cattrs.BaseValidationError, orjson.JSONDecodeError, TypeError, ValueError):
            logger.warning("ignoring an unreadable response cache entry %s", key)
            return None
        return attrs.evolve(result, tool_calls=tuple(result.tool_calls))

    async def _store(self, key: str, result: ChatResult) -> None:
        try:
            await self.state.set(key, converter.dumps(result), ttl_s=self.ttl_s)
        except StateUnavailableError as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = self._clock()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            logger.warning("response cache unavailable, serving uncached: %s", exc)


def _set_header(call: Call, value: str) -> None:
    call.state.setdefault(RESPONSE_HEADERS, {})[CACHE_HEADER] = value


def build(context: PluginContext) -> ResponseCachePolicy:
    """Always built: even with RESPONSE_CACHE_ENABLED=false a request may opt in with ``cache: true``."""
    settings = context.settings
    return ResponseCachePolicy(context.state, settings.response_cache_ttl_s, settings.response_cache_enabled)


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("cache", build)
