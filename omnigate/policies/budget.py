"""Budget policy: reserve a request's worst-case cost against its org and project daily/monthly budgets."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from omnigate import hookimpl
from omnigate.chat.models import Target
from omnigate.errors import (
    BudgetExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    OmnigateError,
    ServiceUnavailableError,
)
from omnigate.plugin.interfaces import Call, CallNext, CallOutcome, PluginContext
from omnigate.plugin.registry import PolicyRegistry
from omnigate.policies.admission import PENDING_PARTS, Admission, HeaderPairs, OutageLog, Part, joint_for
from omnigate.policies.estimate import call_worst_case_usage
from omnigate.policies.windows import SYSTEM_CLOCK, Clock, Window, day_window, month_window
from omnigate.pricing import PriceBook, cost_micros
from omnigate.settings import Settings
from omnigate.state.base import Counter, SharedState
from omnigate.store.database import Database
from omnigate.store.usage import spend_since

logger = logging.getLogger("omnigate.policies.budget")

# Counters outlive their window a little, for processes whose clocks run slightly behind.
WINDOW_SLACK_S = 60.0
# Bound on the per-process memory of which windows are known to be rebuilt.
_SEEDED_PRUNE_AT = 10_000
_SEEDED_MAX = 100_000

# (scope, period) of every budget, in the order counters are reserved and headers are written.
BUDGETS = (("org", "daily"), ("org", "monthly"), ("project", "daily"), ("project", "monthly"))
_WINDOWS: dict[str, Callable[[float], Window]] = {"daily": day_window, "monthly": month_window}
_LIMIT_ATTRS = tuple(f"{scope}_{period}_budget_micros" for scope, period in BUDGETS)
_LINES_CACHED_MAX = 10_000


def usd_header(micros: int) -> str:
    """Exact USD with six decimals (micro-USD), e.g. ``4.999370``."""
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    return f"{sign}{micros // 1_000_000}.{micros % 1_000_000:06d}"


def usd_text(micros: int) -> str:
    """USD for messages: cents when exact (``$5.00``), else every significant micro-dollar digit."""
    if micros % 10_000 == 0:
        return f"${micros // 1_000_000}.{micros % 1_000_000 // 10_000:02d}"
    return "$" + usd_header(micros).rstrip("0")


@attrs.frozen
class BudgetLine:
    """One budget that applies to a request, in the window of the request's admission."""

    scope: str  # "org" | "project"
    scope_id: str
    period: str  # "daily" | "monthly"
    limit: int
    window: Window

    @property
    def name(self) -> str:
        return f"{self.scope} {self.period} budget"

    key: str = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: f"budget:{self.scope}:{self.scope_id}:{self.window.label}", takes_self=True
        ),
    )

    # Present once the counter holds the window's spend rebuilt from the usage records: every
    # reservation names it as its counter's guard.
    marker: str = attrs.field(
        init=False, eq=False, default=attrs.Factory(lambda self: self.key + ":seeded", takes_self=True)
    )

    # What every request of the window repeats, made once (lines are cached per window).
    limit_header: tuple[bytes, bytes] = attrs.field(
        init=False,
        eq=False,
        default=attrs.Factory(
            lambda self: (
                f"x-budget-{self.scope}-{self.period}-limit-usd".encode(),
                usd_header(self.limit).encode(),
            ),
            takes_self=True,
        ),
    )
    remaining_header: bytes = attrs.field(
        init=False,
        eq=False,
        default=attrs.Factory(
            lambda self: f"x-budget-{self.scope}-{self.period}-remaining-usd".encode(), takes_self=True
        ),
    )
    # When the window's counter may expire: its TTL at ``now`` (inside the window) is this minus now.
    expires_at: float = attrs.field(
        init=False,
        eq=False,
        default=attrs.Factory(lambda self: self.window.end + WINDOW_SLACK_S, takes_self=True),
    )

    def describe_window(self) -> str:
        start = dt.datetime.fromtimestamp(self.window.start, dt.UTC)
        return f"UTC day {start:%Y-%m-%d}" if self.period == "daily" else f"UTC month {start:%Y-%m}"


class Seeder:
    """Rebuilds a window's counter from the usage records once: at most once per window per process.

    Seeding is one atomic reserve of the window's marker (limit 1, so only the first process wins)
    together with the spend, so concurrent processes never add the history twice; within a process,
    concurrent requests share one rebuild.
    """

    def __init__(self, state: SharedState, db: Database, clock: Clock) -> None:
        self.state = state
        self.db = db
        self.clock = clock
        self._seeded: dict[str, float] = {}  # counter key -> its window's end
        self._inflight: dict[str, asyncio.Future[None]] = {}

    def forget(self, line: BudgetLine) -> None:
        self._seeded.pop(line.key, None)

    async def ensure(self, lines: Sequence[BudgetLine]) -> None:
        for line in lines:
            if line.key in self._seeded:
                continue
            pending = self._inflight.get(line.key)
            if pending is None:
                pending = asyncio.ensure_future(self._seed(line))
                self._inflight[line.key] = pending
                pending.add_done_callback(functools.partial(self._done, line.key))
            await asyncio.shield(pending)

    def _done(self, key: str, _: asyncio.Future[None]) -> None:
        self._inflight.pop(key, None)

    async def _seed(self, line: BudgetLine) -> None:
        scope = {"org_id": line.scope_id} if line.scope == "org" else {"project_id": line.scope_id}
        try:
            spend = await spend_since(self.db, **scope, since_ms=line.window.start_ms)
        except Exception as error:
            OutageLog.log(f"could not read the {line.name} spend of {line.scope_id}", error, exc_info=True)
            raise ServiceUnavailableError(
                f"the {line.name} cannot be checked: its spend cannot be read from the database; retry shortly",
                code="budget_unavailable",
                headers={"retry-after": "1"},
            ) from None
        ttl = line.window.ttl_s(self.clock(), WINDOW_SLACK_S)
        seeded = await self.state.reserve(
            [Counter(line.marker, 1, 1, ttl), Counter(line.key, spend, None, ttl)]
        )
        if seeded.admitted:
            logger.info(
                "rebuilt the %s counter of %s from usage records: %d micro-USD",
                line.name,
                line.scope_id,
                spend,
            )
        self._remember(line)

    def _remember(self, line: BudgetLine) -> None:
        if len(self._seeded) >= _SEEDED_PRUNE_AT:
            now = self.clock()
            for key in [k for k, end in self._seeded.items() if end <= now]:
                del self._seeded[key]
            if len(self._seeded) >= _SEEDED_MAX:
                self._seeded.clear()  # forgetting only costs a rebuild attempt that the marker refuses
        self._seeded[line.key] = line.window.end


@attrs.define
class BudgetPart:
    """The request's reservation against every budget that applies (an admission :class:`Part`)."""

    lines: tuple[BudgetLine, ...]
    amount: int
    seeder: Seeder
    now: float
    """When the part was made: ``lines`` are the windows holding it."""
    strict: bool = True
    _stale: list[BudgetLine] = attrs.Factory(list)
    counters: Sequence[Counter] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # A counter whose marker is gone was lost (flush, failover) and holds only what came after.
        self.counters = [
            Counter(line.key, self.amount, line.limit, line.expires_at - self.now, line.marker)
            for line in self.lines
        ]

    async def prepare(self) -> None:
        await self.seeder.ensure(self.lines)

    def lost(self, indices: Sequence[int]) -> None:
        self._stale = [self.lines[index] for index in indices]
        for line in self._stale:
            self.seeder.forget(line)

    async def rebuild(self) -> None:
        await self.seeder.ensure(self._stale)

    def headers(self, values: Sequence[int], now: float) -> HeaderPairs:
        headers: HeaderPairs = []
        for line, value in zip(self.lines, values, strict=True):
            headers += (
                line.limit_header,
                (line.remaining_header, usd_header(max(line.limit - value, 0)).encode()),
            )
        return headers

    def refusal(self, index: int, values: Sequence[int], now: float) -> OmnigateError:
        line = self.lines[index]
        retry_after = {"retry-after": str(max(math.ceil(line.window.seconds_left(now)), 1))}
        if self.amount > line.limit:
            return BudgetExceededError(
                f"{line.name} of {usd_text(line.limit)} exceeded: this request may cost up to "
                f"{usd_text(self.amount)} (prompt estimate plus max_tokens at the model's price), more than "
                "the whole budget; lower max_tokens or shorten the prompt",
                headers=retry_after,
            )
        return BudgetExceededError(
            f"{line.name} of {usd_text(line.limit)} exceeded: {usd_text(values[index])} is spent or reserved "
            f"in the {line.describe_window()} and this request may cost up to {usd_text(self.amount)}",
            headers=retry_after,
        )

    def settlement(self, outcome: CallOutcome, now: float) -> list[Counter]:
        if outcome.cost_micros is None:
            return []  # cost unknown: the worst case stays reserved until the window ends
        delta = outcome.cost_micros - self.amount
        return [
            Counter(line.key, delta, None, line.expires_at - now)
            for line in self.lines
            if now < line.window.end
        ]


class BudgetPolicy:
    """Reserves the worst-case cost at admission and settles it to the real cost when the request ends.

    The worst case is the estimated prompt plus the output cap (``max_tokens``, else
    ``BUDGET_DEFAULT_MAX_TOKENS``) at the highest price among the model and the request's
    ``fallback_models``. A budget is never enforced on a guess: when a budget applies and a model the
    request may use has no price, the request is refused (400 ``model_price_unknown``).
    """

    def __init__(
        self,
        state: SharedState,
        db: Database,
        prices: PriceBook,
        resolve_model: Callable[[str], Target] | None,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.state = state
        self.prices = prices
        self.resolve_model = resolve_model
        self.settings = settings
        self.clock = clock
        self.seeder = Seeder(state, db, clock)
        # id(principal) -> (principal, its UTC day's start and end, its lines): principals are shared by
        # every request of a key until the key cache reloads them, and windows change only at midnight.
        self._lines: dict[int, tuple[Any, float, float, tuple[BudgetLine, ...]]] = {}
        joint_for(state).budget_commits = True

    def lines(self, principal: Any, now: float) -> tuple[BudgetLine, ...]:
        """The budgets that apply to ``principal``, in the windows holding ``now``."""
        known = self._lines.get(id(principal))
        if known is not None and known[0] is principal and known[1] <= now < known[2]:
            return known[3]
        limits = tuple(getattr(principal, attr, None) for attr in _LIMIT_ATTRS)
        lines = tuple(
            BudgetLine(scope, getattr(principal, f"{scope}_id"), period, limit, _WINDOWS[period](now))
            for (scope, period), limit in zip(BUDGETS, limits, strict=True)
            if limit is not None
        )
        if len(self._lines) >= _LINES_CACHED_MAX:
            self._lines.clear()
        day = day_window(now)
        self._lines[id(principal)] = (principal, day.start, day.end, lines)
        return lines

    def worst_case(self, call: Call, budget: BudgetLine) -> int:
        usage = call_worst_case_usage(call, self.settings.budget_default_max_tokens)
        targets = [("model", call.target)]
        for name in call.request.fallback_models or ():
            if self.resolve_model is None:
                break
            try:
                targets.append(("fallback_models", self.resolve_model(name)))
            except ModelNotFoundError:
                continue  # never attempted, so it costs nothing (the fallback policy answers 400)
        worst = 0
        for param, target in targets:
            price = self.prices.price(target.provider, target.model)
            if price is None:
                raise InvalidRequestError(
                    f"model {target.provider}/{target.model} has no known price, so the {budget.name} cannot be "
                    "enforced for it; use a priced model or ask the operator to add it to MODEL_PRICES_FILE",
                    code="model_price_unknown",
                    param=param,
                )
            worst = max(worst, cost_micros(price, usage))
        return worst

    def part(self, call: Call) -> BudgetPart | None:
        now = self.clock()
        lines = self.lines(call.principal, now)
        if not lines:
            return None
        return BudgetPart(lines, self.worst_case(call, lines[0]), self.seeder, now)

    async def __call__(self, call: Call, call_next: CallNext) -> Any:
        parts: list[Part] = call.state.pop(PENDING_PARTS, [])
        part = self.part(call)
        if part is not None:
            parts.append(part)
        if parts:
            admission = Admission(
                self.state, parts, fail_open=self.settings.rate_limit_fail_open, clock=self.clock
            )
            await admission.admit(call)
        return await call_next(call)


def build(context: PluginContext, clock: Clock = SYSTEM_CLOCK) -> BudgetPolicy:
    return BudgetPolicy(
        context.state, context.db, context.prices, context.resolve_model, context.settings, clock
    )


@hookimpl
def omnigate_register_policies(registry: PolicyRegistry, settings: Settings) -> None:
    registry.add("budget", build)
