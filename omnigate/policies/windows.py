"""UTC calendar windows (minute, day, month) that rate-limit and budget counters are keyed by."""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from collections.abc import Callable

import attrs

Clock = Callable[[], float]
"""Epoch seconds (UTC), ``time.time`` by default; tests inject their own to cross boundaries."""

SYSTEM_CLOCK: Clock = time.time

_MINUTE_S = 60
_DAY_S = 86_400
_EPOCH = dt.date(1970, 1, 1)


@attrs.frozen
class Window:
    """One fixed window: ``start`` (inclusive) to ``end`` (exclusive), in epoch seconds.

    ``label`` names the window in counter keys (``m29450160``, ``d20250114``, ``mo202501``), so
    every process derives the same key from its own clock without coordination.
    """

    period: str
    label: str
    start: float
    end: float

    @property
    def start_ms(self) -> int:
        return int(self.start) * 1000

    def seconds_left(self, now: float) -> float:
        return max(self.end - now, 0.0)

    def ttl_s(self, now: float, slack_s: float) -> float:
        """How long a counter of this window must live: to the window's end, plus ``slack_s``."""
        return self.seconds_left(now) + slack_s


def minute_window(now: float) -> Window:
    return _minute(math.floor(now / _MINUTE_S))


@functools.lru_cache(maxsize=8)
def _minute(index: int) -> Window:
    return Window("minute", f"m{index}", index * _MINUTE_S, (index + 1) * _MINUTE_S)


def day_window(now: float) -> Window:
    """The UTC calendar day containing ``now`` (POSIX time has no leap seconds: days are 86,400 s)."""
    return _day(math.floor(now / _DAY_S))


def month_window(now: float) -> Window:
    """The UTC calendar month containing ``now``."""
    return _month(math.floor(now / _DAY_S))


@functools.lru_cache(maxsize=8)
def _day(index: int) -> Window:
    day = _EPOCH + dt.timedelta(days=index)
    return Window("daily", f"d{day:%Y%m%d}", index * _DAY_S, (index + 1) * _DAY_S)


@functools.lru_cache(maxsize=8)
def _month(day_index: int) -> Window:
    day = _EPOCH + dt.timedelta(days=day_index)
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return Window(
        "monthly",
        f"mo{first:%Y%m}",
        (first - _EPOCH).days * _DAY_S,
        (following - _EPOCH).days * _DAY_S,
    )
