"""One usage record per chat request, whatever happened: built here, handed to the write-behind writer once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator

from omnigate.chat.models import Target, Usage
from omnigate.middleware.request_id import mint_request_id
from omnigate.plugin.interfaces import Call, CallOutcome, Finalizer
from omnigate.pricing import PriceBook, cost_micros
from omnigate.usage.records import STATUS_CACHE_HIT, STATUS_OK, UsageRecord
from omnigate.usage.writer import UsageWriter

logger = logging.getLogger("omnigate.accounting")


class Ledger:
    """Collects what one request did and submits exactly one UsageRecord (the first ``finish`` wins).

    The finished ledger is also what observers see (``scope["omnigate.outcome"]``): its ``record``,
    ``upstream_s`` (time spent waiting on providers) and ``call``.
    """

    def __init__(
        self,
        prices: PriceBook,
        writer: UsageWriter,
        principal: object,
        request_id: str,
        started: float,
        client_request_id: str | None = None,
    ) -> None:
        self._prices = prices
        self._writer = writer
        self._principal = principal
        self.request_id = request_id
        # A client's own request id is echoed and recorded, but never the record's key: ids that clients
        # repeat (retries, fixed values, another tenant's) would make one record silently replace another.
        self._record_id = request_id if client_request_id is None else mint_request_id()
        self._client_request_id = client_request_id
        self._started = started
        self.target: Target | None = None
        self.requested_model = ""
        self.stream = False
        self.call: Call | None = None
        self.record: UsageRecord | None = None
        self.outcome: CallOutcome | None = None
        self._priced: tuple[Usage, int | None] | None = None

    @property
    def finished(self) -> bool:
        return self.record is not None

    @property
    def cached(self) -> bool:
        return bool(self.call and self.call.state.get("cached"))

    @property
    def fallback_used(self) -> bool:
        return bool(self.call and self.call.state.get("fallback_used"))

    @property
    def upstream_s(self) -> float:
        return self.call.upstream_s if self.call else 0.0

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self._started) * 1000)

    def cost(self, usage: Usage | None) -> int | None:
        """Integer micro-USD; 0 when nothing was used or served from cache; None at an unknown price."""
        if usage is None or usage.total_tokens == 0 or self.cached:
            return 0
        target = self.call.target if self.call else self.target
        if target is None:
            return None
        if self._priced is not None and self._priced[0] == usage:
            return self._priced[1]  # the response already priced this usage; the record reuses it
        price = self._prices.price(target.provider, target.model)
        cost = None if price is None else cost_micros(price, usage)
        self._priced = (usage, cost)
        return cost

    def finish(
        self, status: str, http_status: int, usage: Usage | None = None, error_code: str | None = None
    ) -> None:
        if self.record is not None:
            return
        usage = usage or Usage()
        if status == STATUS_OK and self.cached:
            status = STATUS_CACHE_HIT
        target = self.call.target if self.call else self.target
        principal = self._principal
        cost = self.cost(usage)
        self.record = UsageRecord(
            request_id=self._record_id,
            client_request_id=self._client_request_id,
            org_id=getattr(principal, "org_id", ""),
            project_id=getattr(principal, "project_id", ""),
            key_id=getattr(principal, "key_id", None),
            provider=target.provider if target else "",
            model=target.model if target else self.requested_model,
            status=status,
            http_status=http_status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_micros=cost,
            latency_ms=self.latency_ms(),
            stream=self.stream,
            cached=self.cached,
            fallback_used=self.fallback_used,
            attempts=self.call.attempts if self.call else 0,
            error_code=error_code,
            created_at=time.time_ns() // 1_000_000,
        )
        self.outcome = CallOutcome(status, http_status, usage, cost, error_code)
        self._writer.submit(self.record)

    async def run_finalizers(self) -> None:
        """Each policy's ``on_finish`` callback, once, innermost policy first (like unwinding).

        Plain callbacks run here and now; from the first one that returns an awaitable on, the rest
        run in one task shielded from the request's own cancellation.
        """
        if self.call is None or self.outcome is None or not self.call.finalizers:
            return
        finalizers, self.call.finalizers = self.call.finalizers, []
        pending = reversed(finalizers)
        for finalizer in pending:
            awaitable = _run_finalizer(finalizer, self.outcome)
            if awaitable is not None:
                await asyncio.shield(_finish_async(awaitable, pending, self.outcome))
                return


def _run_finalizer(finalizer: Finalizer, outcome: CallOutcome) -> Awaitable[None] | None:
    try:
        return finalizer(outcome)
    except Exception:
        logger.exception("a policy's on_finish callback failed")
        return None


async def _finish_async(first: Awaitable[None], rest: Iterator[Finalizer], outcome: CallOutcome) -> None:
    await _settled(first)
    for finalizer in rest:
        awaitable = _run_finalizer(finalizer, outcome)
        if awaitable is not None:
            await _settled(awaitable)


async def _settled(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("a policy's on_finish callback failed")
