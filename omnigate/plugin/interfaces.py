"""The objects plugins provide: providers, policies, and the call they act on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from omnigate.settings import Settings


@attrs.define(slots=True)
class Call:
    """One chat request on its way through the policy pipeline to a provider."""

    request_id: str
    principal: Any
    model: str
    stream: bool
    body: dict[str, Any]
    deadline: float
    state: dict[str, Any] = attrs.Factory(dict)


CallNext = Callable[[Call], Awaitable[Any]]


class Policy(Protocol):
    """An around-policy: acts before, after, instead of or several times around ``call_next``."""

    async def __call__(self, call: Call, call_next: CallNext) -> Any: ...


class Provider(Protocol):
    """An upstream provider: sends a call and returns a result (or a stream), and closes its session."""

    name: str

    async def send(self, call: Call) -> Any: ...

    async def aclose(self) -> None: ...


@attrs.frozen
class PluginContext:
    """What a provider or policy factory gets at start-up."""

    settings: Settings
    state: Any = None


ProviderFactory = Callable[[PluginContext], Provider]
PolicyFactory = Callable[[PluginContext], Policy | None]
