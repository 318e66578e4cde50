"""Registry objects handed to the register hooks; they turn registrations into ordered specs."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from omnigate.plugin.interfaces import PolicyFactory, ProviderFactory


class RegistrationError(ValueError):
    """A plugin registered something twice, or referred to something unknown."""


@attrs.frozen
class ProviderSpec:
    name: str
    factory: ProviderFactory
    model_prefixes: tuple[str, ...]


class ProviderRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, ProviderSpec] = {}

    def add(self, name: str, factory: ProviderFactory, model_prefixes: Sequence[str] = ()) -> None:
        if name in self._specs:
            raise RegistrationError(f"provider {name!r} is registered twice")
        if "/" in name or not name:
            raise RegistrationError(f"provider name {name!r} must be non-empty and contain no '/'")
        self._specs[name] = ProviderSpec(name, factory, tuple(model_prefixes))

    def specs(self) -> list[ProviderSpec]:
        return list(self._specs.values())


@attrs.frozen
class PolicySpec:
    name: str
    factory: PolicyFactory
    before: str | None = None
    after: str | None = None


class PolicyRegistry:
    """Collects policies; ``ordered()`` returns them outermost first."""

    DEFAULT_ORDER = ("rate_limit", "budget", "cache", "fallback", "circuit_breaker", "retry")

    def __init__(self) -> None:
        self._specs: dict[str, PolicySpec] = {}

    def add(
        self, name: str, factory: PolicyFactory, *, before: str | None = None, after: str | None = None
    ) -> None:
        if name in self._specs:
            raise RegistrationError(f"policy {name!r} is registered twice")
        if before is not None and after is not None:
            raise RegistrationError(f"policy {name!r}: give before or after, not both")
        self._specs[name] = PolicySpec(name, factory, before, after)

    def ordered(self) -> list[PolicySpec]:
        anchored = [s for s in self._specs.values() if s.before or s.after]
        rank = {name: i for i, name in enumerate(self.DEFAULT_ORDER)}
        free = [s for s in self._specs.values() if not (s.before or s.after)]
        order = sorted(free, key=lambda s: rank.get(s.name, len(rank)))
        pending = anchored
        while pending:
            placed_any = False
            for spec in list(pending):
                names = [s.name for s in order]
                anchor = spec.before or spec.after
                if anchor in names:
                    index = names.index(anchor) + (0 if spec.before else 1)
                    order.insert(index, spec)
                    pending.remove(spec)
                    placed_any = True
            if not placed_any:
                # The anchors are absent (blocked or never installed): run these innermost.
                order.extend(pending)
                break
        return order


CommandRun = Callable[[argparse.Namespace, "CommandContext"], "int | None | Awaitable[int | None]"]


@attrs.frozen
class CommandSpec:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: CommandRun


@attrs.define
class CommandContext:
    """What a CLI command gets besides its arguments: settings and the plugin manager, built lazily."""

    plugin_manager: Any
    settings_loader: Callable[[], Any]

    @property
    def settings(self) -> Any:
        return self.settings_loader()


class CommandRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}

    def add(
        self,
        name: str,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: CommandRun,
    ) -> None:
        if name in self._specs:
            raise RegistrationError(f"command {name!r} is registered twice")
        self._specs[name] = CommandSpec(name, help, configure, run)

    def specs(self) -> list[CommandSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)
