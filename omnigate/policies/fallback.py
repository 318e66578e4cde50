"""Fallback policy: after the primary model's retries are exhausted (or its breaker is open), try the
request's ``fallback_models`` in order, across providers, before the first byte reaches the client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from omnigate import hookimpl
from omnigate.chat.models import ChatStream, Target
from omnigate.errors import ModelNotFoundError, PermissionDeniedError, UpstreamError
from omnigate.plugin.interfaces import Call, CallNext, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies.retry import prime_stream
from omnigate.settings import Settings

logger = logging.getLogger("omnigate.policies.fallback")


class FallbackPolicy:
    """Tries ``call.target``, then each fallback model, setting ``call.target`` for each attempt.

    Only a retryable :class:`UpstreamError` (the retry policy inside gave up, or the breaker is open)
    moves on; any other error is the answer. Every fallback model is routed and checked against the
    key's allowed models before the first upstream call (400/403 naming ``fallback_models[i]``). A
    target listed twice is tried once. No new target starts after the request's deadline or once it
    has used ``max_attempts_per_request`` upstream attempts. When a fallback answers,
    ``call.state["fallback_used"]`` is True and ``call.target`` names the model that answered.
    """

    def __init__(
        self,
        resolve_model: Callable[[str], Target],
        max_attempts_per_request: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolve_model = resolve_model
        self.max_attempts_per_request = max_attempts_per_request
        self.clock = clock

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        if not call.request.fallback_models:
            return await call_next(call)
        targets = self.targets(call)
        last_error: UpstreamError | None = None
        for index, target in enumerate(targets):
            if index > 0 and not self._may_start(call):
                break
            call.target = target
            try:
                result = await call_next(call)
                if isinstance(result, ChatStream):
                    result = await prime_stream(result)
            except UpstreamError as error:
                if not error.retryable:
                    raise
                last_error = error
                if index + 1 < len(targets):
                    logger.info(
                        "%s/%s failed (%s); falling back to %s/%s",
                        target.provider,
                        target.model,
                        error.code,
                        targets[index + 1].provider,
                        targets[index + 1].model,
                    )
                continue
            if index > 0:
                call.state["fallback_used"] = True
            return result
        assert last_error is not None
        raise last_error

    def targets(self, call: Call) -> list[Target]:
        """The primary, then each distinct fallback target; a bad fallback model fails the request."""
        targets = [call.target]
        allowed = getattr(call.principal, "allowed_models", None)
        for index, model in enumerate(call.request.fallback_models or ()):
            param = f"fallback_models[{index}]"
            if allowed is not None and model not in allowed:
                raise PermissionDeniedError(
                    f"{param}: this API key may not use model {model!r}",
                    code="model_not_allowed",
                    param=param,
                )
            try:
                target = self.resolve_model(model)
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(f"{param}: {exc.message}", param=param) from None
            if target not in targets:
                targets.append(target)
        return targets

    def _may_start(self, call: Call) -> bool:
        return self.clock() < call.deadline and call.attempts < self.max_attempts_per_request


def build(context: PluginContext) -> FallbackPolicy:
    if context.resolve_model is None:
        raise RuntimeError("the fallback policy needs the gateway's model router (context.resolve_model)")
    return FallbackPolicy(context.resolve_model, context.settings.max_attempts_per_request)


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("fallback", build)
