"""Rate-limit policy: a project's requests and tokens per UTC minute, exact across gateway processes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from omnigate import hookimpl
from omnigate.errors import OmnigateError, RateLimitError
from omnigate.plugin.interfaces import Call, CallNext, CallOutcome, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies.admission import PENDING_PARTS, Admission, HeaderPairs, joint_for
from omnigate.policies.estimate import call_worst_case_usage
from omnigate.policies.windows import SYSTEM_CLOCK, Clock, Window, minute_window
from omnigate.settings import Settings
from omnigate.state.base import Counter, SharedState
from omnigate.usage.records import STATUS_CACHE_HIT

# Counters outlive their minute by a little, for processes whose clocks run slightly behind.
WINDOW_SLACK_S = 5.0
REQUESTS = "requests"
TOKENS = "tokens"
_HEADER_NAMES = {
    kind: (
        f"x-ratelimit-limit-{kind}".encode(),
        f"x-ratelimit-remaining-{kind}".encode(),
        f"x-ratelimit-reset-{kind}".encode(),
    )
    for kind in (REQUESTS, TOKENS)
}


def reset_duration(seconds: float) -> str:
    """Time to the window's reset in OpenAI's style: ``"250ms"``, ``"17.25s"``."""
    millis = max(math.ceil(round(seconds * 1000, 2)), 0)  # epoch floats carry ~1e-6 s of noise
    if millis < 1000:
        return f"{millis}ms"
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"


@attrs.define  # not frozen: two per request, and frozen attrs classes cost three times as much to build
class _Line:
    kind: str  # REQUESTS | TOKENS
    limit: int
    amount: int
    counter: Counter


@attrs.define
class RateLimitPart:
    """The request's share of its project's per-minute counters (an admission :class:`Part`)."""

    project_id: str
    window: Window
    lines: tuple[_Line, ...]
    counters: Sequence[Counter]
    """The lines' counters, in order."""
    strict: bool = False

    async def prepare(self) -> None:
        return None

    def lost(self, indices: Sequence[int]) -> None:
        return None  # its counters have no guard: a lost minute only forgets what it had admitted

    async def rebuild(self) -> None:
        return None

    def headers(self, values: Sequence[int], now: float) -> HeaderPairs:
        reset = reset_duration(self.window.seconds_left(now)).encode()
        headers: HeaderPairs = []
        for line, value in zip(self.lines, values, strict=True):
            limit_name, remaining_name, reset_name = _HEADER_NAMES[line.kind]
            headers += (
                (limit_name, b"%d" % line.limit),
                (remaining_name, b"%d" % max(line.limit - value, 0)),
                (reset_name, reset),
            )
        return headers

    def refusal(self, index: int, values: Sequence[int], now: float) -> OmnigateError:
        line = self.lines[index]
        headers = {name.decode(): value.decode() for name, value in self.headers(values, now)}
        if line.amount > line.limit:
            headers["x-should-retry"] = "false"
            return RateLimitError(
                f"this request may use up to {line.amount} tokens (prompt estimate plus max_tokens), more "
                f"than the project's limit of {line.limit} tokens per minute; lower max_tokens or shorten "
                "the prompt",
                headers=headers,
            )
        retry_after = max(math.ceil(self.window.seconds_left(now)), 1)
        headers["retry-after"] = str(retry_after)
        unit = "requests" if line.kind == REQUESTS else "tokens"
        return RateLimitError(
            f"the project's rate limit of {line.limit} {unit} per minute is reached; "
            f"retry after {retry_after} s",
            headers=headers,
        )

    def settlement(self, outcome: CallOutcome, now: float) -> list[Counter]:
        if now >= self.window.end:
            return []  # a past minute limits nothing any more
        adjustments = []
        for line in self.lines:
            if line.kind == TOKENS:
                used = 0 if outcome.status == STATUS_CACHE_HIT else outcome.usage.total_tokens
                counter = line.counter
                adjustments.append(Counter(counter.key, used - line.amount, None, counter.ttl_s))
        return adjustments


class RateLimitPolicy:
    """Counts requests and tokens per project per UTC minute (fixed windows) in the shared state.

    Tokens are reserved at admission (prompt estimate plus the output cap, as budgets do) and settled
    to the upstream's reported tokens at the end; cache hits count as a request but no tokens.
    When a budget policy follows, it reserves these counters with its own in one atomic step.
    """

    def __init__(self, state: SharedState, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock
        self.joint = joint_for(state)

    def part(self, call: Call) -> RateLimitPart | None:
        principal = call.principal
        rpm: int | None = getattr(principal, "project_rpm", None)
        tpm: int | None = getattr(principal, "project_tpm", None)
        if rpm is None and tpm is None:
            return None
        now = self.clock()
        window = minute_window(now)
        ttl = window.end + WINDOW_SLACK_S - now  # the minute holding now
        key = f"rl:{principal.project_id}:{{}}:{window.label}"
        lines, counters = [], []
        if rpm is not None:
            counters.append(Counter(key.format(REQUESTS), 1, rpm, ttl))
            lines.append(_Line(REQUESTS, rpm, 1, counters[-1]))
        if tpm is not None:
            tokens = call_worst_case_usage(call, self.settings.budget_default_max_tokens).total_tokens
            counters.append(Counter(key.format(TOKENS), tokens, tpm, ttl))
            lines.append(_Line(TOKENS, tpm, tokens, counters[-1]))
        return RateLimitPart(principal.project_id, window, tuple(lines), counters)

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        part = self.part(call)
        if part is not None:
            if self.joint.budget_commits:
                call.state.setdefault(PENDING_PARTS, []).append(part)
            else:
                admission = Admission(
                    self.state, [part], fail_open=self.settings.rate_limit_fail_open, clock=self.clock
                )
                await admission.admit(call)
        return await call_next(call)


def build(context: PluginContext, clock: Clock = SYSTEM_CLOCK) -> RateLimitPolicy:
    return RateLimitPolicy(context.state, context.settings, clock)


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("rate_limit", build)
