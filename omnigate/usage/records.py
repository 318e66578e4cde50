"""The usage record: one row of ``usage_records`` per gateway request, and its status values."""

from __future__ import annotations

import attrs

from omnigate.chat.models import Usage
from omnigate.store.records import now_ms

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_CANCELLED = "cancelled"
STATUS_CACHE_HIT = "cache_hit"
STATUS_TRUNCATED = "truncated"  # the stream broke mid-way; tokens are those seen before the cut
STATUSES = frozenset({STATUS_OK, STATUS_ERROR, STATUS_CANCELLED, STATUS_CACHE_HIT, STATUS_TRUNCATED})


@attrs.frozen(slots=True, kw_only=True)
class UsageRecord:
    """Exactly the table's columns. ``cost_micros`` None means the price was unknown (never $0 for that)."""

    request_id: str  # minted by the gateway: unique per request
    client_request_id: str | None = None  # the client's own x-request-id, when it sent one
    org_id: str
    project_id: str
    key_id: str | None = None
    provider: str
    model: str
    status: str
    http_status: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: int | None
    latency_ms: int
    stream: bool = False
    cached: bool = False
    fallback_used: bool = False
    attempts: int = 1
    error_code: str | None = None
    created_at: int = attrs.field(factory=now_ms)  # epoch milliseconds, UTC

    @property
    def usage(self) -> Usage:
        """The token counts as a chat `Usage`."""
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    def with_usage(self, usage: Usage) -> UsageRecord:
        """A copy carrying ``usage``'s token counts."""
        return attrs.evolve(
            self,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
        )
