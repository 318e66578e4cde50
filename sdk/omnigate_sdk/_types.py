"""Small shared types: the "argument not given" sentinel and the per-call option aliases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import httpx

__all__ = ["NOT_GIVEN", "Auth", "Headers", "NotGiven", "Timeout"]

Auth = Literal["project", "admin"]
Headers = Mapping[str, str]
Timeout = float | httpx.Timeout | None


class NotGiven:
    """Marks an argument the caller left out, so ``None`` can mean "set to null" (e.g. clear a budget)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()
