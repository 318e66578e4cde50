"""One atomic shared-state reservation per request for the rate-limit and budget policies, and its settlement.

Each policy describes its counters as a :class:`Part`; :class:`Admission` reserves every part's
counters in one ``state.reserve`` (one Lua script on Redis, one await-free section in process) and,
when the request has ended, settles them all in one ``state.add``. The rate-limit policy hands its
part to the budget policy through ``call.state`` when a budget policy runs after it (see
:func:`joint_for`), so a request costs one round trip at admission and one at settlement.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Sequence
from typing import Protocol

import attrs

from omnigate.errors import OmnigateError, ServiceUnavailableError
from omnigate.plugin.interfaces import RESPONSE_HEADER_PAIRS, Call, CallOutcome
from omnigate.policies.windows import Clock
from omnigate.state.base import Counter, SharedState, StateUnavailableError

logger = logging.getLogger("omnigate.policies.admission")

PENDING_PARTS = "admission.pending"  # call.state key: parts the rate-limit policy left for the budget policy
HeaderPairs = list[tuple[bytes, bytes]]
_UNAVAILABLE_LOG_INTERVAL_S = 10.0


class Part(Protocol):
    """What one policy contributes to a request's admission."""

    strict: bool
    """True: never admit without the shared state (money); False: RATE_LIMIT_FAIL_OPEN decides."""

    @property
    def counters(self) -> Sequence[Counter]: ...

    async def prepare(self) -> None:
        """Runs before the reservation (the budget part makes sure its counters are rebuilt)."""

    def lost(self, indices: Sequence[int]) -> None:
        """The part's counters ``indices`` were found without their guard: incomplete, to be rebuilt."""

    async def rebuild(self) -> None:
        """Rebuild the counters ``lost`` named (the reservation is then made again)."""

    def refusal(self, index: int, values: Sequence[int], now: float) -> OmnigateError:
        """The error for counter ``index`` not fitting; ``values`` are the counters before."""

    def headers(self, values: Sequence[int], now: float) -> HeaderPairs:
        """Response headers (raw ASGI pairs) from the counters' values after the reservation."""

    def settlement(self, outcome: CallOutcome, now: float) -> list[Counter]:
        """Adjustments once the request has ended (negative to release what was not used)."""


@attrs.define
class Joint:
    """Per app run: whether a budget policy runs after the rate-limit policy and commits its part."""

    budget_commits: bool = False


_JOINTS: weakref.WeakKeyDictionary[object, Joint] = weakref.WeakKeyDictionary()


def joint_for(state: object) -> Joint:
    """The joint of the app run that owns ``state`` (each app run opens its own state object)."""
    joint = _JOINTS.get(state)
    if joint is None:
        joint = _JOINTS[state] = Joint()
    return joint


class OutageLog:
    """Logs shared-state outages at most every few seconds, so an outage cannot flood the log."""

    last = 0.0

    @classmethod
    def log(cls, what: str, error: BaseException, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - cls.last >= _UNAVAILABLE_LOG_INTERVAL_S:
            cls.last = now
            logger.warning("%s: %s", what, error, exc_info=error if exc_info else None)


class Admission:
    """Reserves the parts' counters for one call and settles them when the call has ended.

    The reservation runs in the request's task: a client that disconnects while it is in flight
    cancels it, and the shared state guarantees a cancelled ``reserve`` leaves nothing behind (in
    process it has no await; on Redis an operation not sent yet is dropped and one already sent is
    given back). Releases and settlements are queued (``add_later``), so no cancellation can drop
    them either (a cancelled ``DECR`` is how counters leak in other gateways).
    """

    def __init__(self, state: SharedState, parts: Sequence[Part], *, fail_open: bool, clock: Clock) -> None:
        self.state = state
        self.parts = list(parts)
        self.fail_open = fail_open
        self.clock = clock
        self.held = False
        self.headers: HeaderPairs = []
        self.counters: list[Counter] = []  # every part's, in order; each part's slice of them:
        self.slices: list[tuple[Part, slice]] = []
        for part in self.parts:
            start = len(self.counters)
            self.counters += part.counters
            self.slices.append((part, slice(start, len(self.counters))))

    async def admit(self, call: Call) -> None:
        """Reserve, or raise the refusal (429) or the outage (503) error; add the response headers."""
        if not self.counters:
            return
        call.on_finish(self._settle)
        await self._reserve()
        if self.headers:
            call.state.setdefault(RESPONSE_HEADER_PAIRS, []).extend(self.headers)

    async def _reserve(self) -> None:
        try:
            for part in self.parts:
                await part.prepare()
        except StateUnavailableError as error:
            self._unavailable(error)
            return
        counters, slices = self.counters, self.slices
        for attempt in (1, 2):
            try:
                reservation = await self.state.reserve(counters)
            except StateUnavailableError as error:
                self._unavailable(error)
                return
            now = self.clock()
            if not reservation.admitted:
                raise self._refusal(reservation.refused, reservation.values, now)
            self.held = True
            if reservation.unguarded and attempt == 1:
                # The shared state lost counters (flushed, restarted): give the reservation back, rebuild
                # the counters from the usage records, and reserve again against the complete values.
                release = [attrs.evolve(c, amount=-c.amount, limit=None) for c in counters]
                self.state.add_later(release, _release_failed)  # goes before the next reservation
                self.held = False
                try:
                    for part in self._lost(slices, reservation.unguarded):
                        await part.rebuild()
                except StateUnavailableError as error:
                    self._unavailable(error)
                    return
                continue
            for part, where in slices:
                self.headers += part.headers(reservation.values[where], now)
            return

    @staticmethod
    def _lost(slices: list[tuple[Part, slice]], unguarded: Sequence[int]) -> list[Part]:
        """Tell each part which of its counters were found incomplete; the parts that own any."""
        lost = []
        for part, where in slices:
            mine = [index - where.start for index in unguarded if where.start <= index < where.stop]
            if mine:
                part.lost(mine)
                lost.append(part)
        return lost

    def _refusal(self, refused: int | None, values: Sequence[int], now: float) -> OmnigateError:
        for part, where in self.slices:
            if refused is not None and where.start <= refused < where.stop:
                return part.refusal(refused - where.start, values[where], now)
        raise RuntimeError(f"the shared state refused counter {refused!r}, which no part owns")

    def _unavailable(self, error: StateUnavailableError) -> None:
        if any(part.strict for part in self.parts) or not self.fail_open:
            OutageLog.log("refusing requests: the shared state is unavailable", error)
            raise ServiceUnavailableError(
                f"the shared state ({self.state.name}) is unavailable, so rate limits and budgets cannot be "
                "enforced; retry shortly",
                code="state_unavailable",
                headers={"retry-after": "1"},
            ) from None
        OutageLog.log("admitting without rate limits (RATE_LIMIT_FAIL_OPEN=true)", error)

    def _settle(self, outcome: CallOutcome) -> None:
        if not self.held:  # refused, failed, cancelled before it completed, or admitted without the state
            return
        now = self.clock()
        adjustments = [c for part in self.parts for c in part.settlement(outcome, now) if c.amount]
        if adjustments:
            # The answer is out: nothing waits for the settlement (it rides with the next operation).
            self.state.add_later(adjustments, _settlement_failed)
        self.held = False


# A failed settlement or release leaves the counters with the whole reservation until their window
# ends: conservative, never over.
def _settlement_failed(error: Exception) -> None:
    OutageLog.log("could not settle a reservation", error)


def _release_failed(error: Exception) -> None:
    OutageLog.log("could not release a reservation before rebuilding the counters", error)
