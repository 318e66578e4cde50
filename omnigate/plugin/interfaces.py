"""The objects plugins provide: providers, policies, and the call they act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from omnigate.chat.models import ChatRequest, ChatResult, ChatStream, Credential, Target, Usage
from omnigate.settings import Settings

# call.state keys for response headers: a dict[str, str] any policy may add to, and raw ASGI pairs
# (the admission policies' headers, built as bytes once).
RESPONSE_HEADERS = "response_headers"
RESPONSE_HEADER_PAIRS = "response_header_pairs"


@attrs.define(slots=True)
class Call:
    """One chat request on its way through the policy pipeline to a provider.

    ``target`` is where the next attempt goes; fallback policies replace it. ``deadline`` is a
    ``time.monotonic()`` instant after which no new attempt may start. ``state`` is scratch space
    for policies (namespaced keys, e.g. ``"budget.reservation"``). ``passthrough`` names the wire
    the client speaks (``OPENAI_CHAT``) when a provider speaking it may hand over its upstream's answer
    as it is (``ChatResult.raw``, ``StreamChunk.raw``); a policy that reads or changes the answer's text
    sets it to None, so every provider translates and the client gets the parsed answer rendered.
    """

    request_id: str
    principal: Any
    request: ChatRequest
    target: Target
    deadline: float
    state: dict[str, Any] = attrs.Factory(dict)
    attempts: int = 0
    upstream_s: float = 0.0
    finalizers: list[Finalizer] = attrs.Factory(list)
    passthrough: str | None = None

    @property
    def stream(self) -> bool:
        return self.request.stream

    def on_finish(self, finalizer: Finalizer) -> None:
        """Run ``finalizer(outcome)`` once the request has ended — after a stream's last byte, an error
        or a client disconnect — with its final usage and cost (budget settlement, breaker bookkeeping).

        A finalizer may be a plain function (run at once, nothing scheduled) or return an awaitable
        (awaited, shielded from the request's cancellation)."""
        self.finalizers.append(finalizer)


@attrs.frozen
class CallOutcome:
    """How a call ended, as recorded in its usage record."""

    status: str
    http_status: int
    usage: Usage
    cost_micros: int | None
    error_code: str | None = None


Finalizer = Callable[[CallOutcome], Awaitable[None] | None]


CallNext = Callable[[Call], Awaitable[Any]]


class Policy(Protocol):
    """An around-policy: acts before, after, instead of or several times around ``call_next``."""

    async def __call__(self, call: Call, call_next: CallNext) -> Any: ...


class Provider(Protocol):
    """An upstream provider, built once per app run; owns one HTTP session.

    ``send`` translates ``call.request`` for ``call.target.model``, calls the upstream and returns a
    :class:`ChatResult`, or for streaming calls a :class:`ChatStream` as soon as the upstream status
    and headers are in (so failures before the first byte can still be retried). Upstream failures
    raise :class:`omnigate.errors.UpstreamError` (never a library exception), with no secret in them.
    """

    name: str
    requires_credential: bool

    def gateway_credential(self) -> Credential | None:
        """The gateway-wide credential from settings, or None when none is configured."""
        ...

    async def send(self, call: Call, credential: Credential | None) -> ChatResult | ChatStream: ...

    async def aclose(self) -> None: ...


@attrs.frozen
class PluginContext:
    """What a provider or policy factory gets at start-up.

    ``state`` is the shared state (in-process or Redis); ``db`` the store's Database (never use it per
    request: cache what you read); ``prices`` the PriceBook; ``resolve_model(name) -> Target`` routes a
    model name as the gateway does (raises ModelNotFoundError). Providers are built first, so their
    context has no ``resolve_model``; policies get all of it.
    """

    settings: Settings
    state: Any = None
    db: Any = None
    prices: Any = None
    resolve_model: Callable[[str], Target] | None = None


ProviderFactory = Callable[[PluginContext], Provider]
PolicyFactory = Callable[[PluginContext], Policy | None]
