"""Usage accounting: the per-request record (here) and its write-behind writer (`omnigate.usage.writer`)."""

from omnigate.usage.records import (
    STATUS_CACHE_HIT,
    STATUS_CANCELLED,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_TRUNCATED,
    STATUSES,
    UsageRecord,
)

__all__ = [
    "STATUSES",
    "STATUS_CACHE_HIT",
    "STATUS_CANCELLED",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_TRUNCATED",
    "UsageRecord",
]
