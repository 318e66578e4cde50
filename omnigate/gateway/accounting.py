"""One usage record per chat request, whatever happened: built here, handed to the write-behind writer once."""

from __future__ import annotations

import logging
import time

from omnigate.chat.models import Target, Usage
from omnigate.pricing import PriceBook, cost_micros
from omnigate.usage.records import UsageRecord
from omnigate.usage.writer import UsageWriter

logger = logging.getLogger("omnigate.accounting")


class Ledger:
    """Collects what one request did and submits exactly one UsageRecord (the first ``finish`` wins)."""

    def __init__(
        self,
        prices: PriceBook,
        writer: UsageWriter,
        principal: object,
        request_id: str,
        started: float,
    ) -> None:
        self._prices = prices
        self._writer = writer
        self._principal = principal
        self.request_id = request_id
        self._started = started
        self.target: Target | None = None
        self.requested_model = ""
        self.stream = False
        self.attempts = 0
        self.cached = False
        self.fallback_used = False
        self.finished = False

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self._started) * 1000)

    def cost(self, usage: Usage | None) -> int | None:
        """Integer micro-USD; 0 when nothing was used; None when tokens were used at an unknown price."""
        if usage is None or usage.total_tokens == 0 or self.cached:
            return 0
        if self.target is None:
            return None
        price = self._prices.price(self.target.provider, self.target.model)
        return None if price is None else cost_micros(price, usage)

    def finish(
        self,
        status: str,
        http_status: int,
        usage: Usage | None = None,
        error_code: str | None = None,
    ) -> None:
        if self.finished:
            return
        self.finished = True
        usage = usage or Usage()
        principal = self._principal
        record = UsageRecord(
            request_id=self.request_id,
            org_id=getattr(principal, "org_id", ""),
            project_id=getattr(principal, "project_id", ""),
            key_id=getattr(principal, "key_id", None),
            provider=self.target.provider if self.target else "",
            model=self.target.model if self.target else self.requested_model,
            status=status,
            http_status=http_status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_micros=self.cost(usage),
            latency_ms=self.latency_ms(),
            stream=self.stream,
            cached=self.cached,
            fallback_used=self.fallback_used,
            attempts=self.attempts,
            error_code=error_code,
            created_at=time.time_ns() // 1_000_000,
        )
        self._writer.submit(record)
