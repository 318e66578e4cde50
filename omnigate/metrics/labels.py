"""Bounded label values: route templates instead of raw paths, and a capped set of model names."""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.routing import BaseRoute, Route

UNMATCHED = "unmatched"
OTHER = "other"
MAX_MODEL_LABELS = 100
MAX_LABEL_LENGTH = 128
_MAX_CACHED_PATHS = 10_000


class RouteLabels:
    """Maps a request path to the template of the route that serves it (``/v1/admin/orgs/{org_id}``).

    Paths no route matches share one label, so scanners probing random URLs cannot grow the series.
    """

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._static: dict[str, str] = {}
        self._dynamic: list[tuple[re.Pattern[str], str]] = []
        for route in routes:
            if not isinstance(route, Route):
                continue
            if "{" in route.path:
                self._dynamic.append((route.path_regex, route.path))
            else:
                self._static[route.path] = route.path
        self._cache: dict[str, str] = {}

    def label(self, path: str) -> str:
        found = self._static.get(path) or self._cache.get(path)
        if found is not None:
            return found
        found = next((template for regex, template in self._dynamic if regex.match(path)), UNMATCHED)
        if len(self._cache) < _MAX_CACHED_PATHS:
            self._cache[path] = found
        return found


class CappedLabels:
    """The first ``limit`` distinct values keep their name; later ones (and overlong ones) become ``other``."""

    def __init__(self, limit: int = MAX_MODEL_LABELS) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit or len(value) > MAX_LABEL_LENGTH:
            return OTHER
        self._seen.add(value)
        return value
