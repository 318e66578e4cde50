"""Model name → provider target: `<provider>/<model>` explicitly, else the longest registered prefix."""

from __future__ import annotations

from collections.abc import Iterable

from omnigate.chat.models import Target
from omnigate.errors import ModelNotFoundError


class ModelRouter:
    def __init__(self, providers: Iterable[str], prefixes: Iterable[tuple[str, str]]) -> None:
        self._providers = frozenset(providers)
        # Longest prefix first, so "gpt-4o-" could be routed apart from "gpt-" if a plugin wants it.
        self._prefixes = sorted(prefixes, key=lambda item: len(item[0]), reverse=True)

    def resolve(self, model: str) -> Target:
        provider, slash, rest = model.partition("/")
        if slash and provider in self._providers:
            return Target(provider, rest)
        for prefix, name in self._prefixes:
            if model.startswith(prefix):
                return Target(name, model)
        raise ModelNotFoundError(self._explain(model), param="model")

    def _explain(self, model: str) -> str:
        routes = ", ".join(f"{prefix}* → {name}" for prefix, name in sorted(self._prefixes))
        explicit = ", ".join(sorted(self._providers))
        return (
            f"model {model!r} is not routed to any provider. Models are routed by prefix ({routes}) "
            f"or explicitly as '<provider>/<model>' with provider one of: {explicit}"
        )
