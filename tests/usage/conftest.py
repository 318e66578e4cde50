"""Usage test fixtures: the store's migrated `db` (SQLite and PostgreSQL), records and a log capture."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from omnigate.usage.records import STATUS_OK, UsageRecord
from tests.store.conftest import db, migrated_urls, pg_databases, postgres_available

__all__ = ["db", "make_record", "migrated_urls", "pg_databases", "postgres_available"]

_ids = itertools.count()


def make_record(**fields: Any) -> UsageRecord:
    """A plausible usage record with a unique request id; ``fields`` override any column."""
    values: dict[str, Any] = {
        "request_id": f"req_{next(_ids):08d}",
        "org_id": "org_a",
        "project_id": "proj_a",
        "key_id": "key_a",
        "provider": "openai",
        "model": "gpt-4o",
        "status": STATUS_OK,
        "http_status": 200,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_micros": 450,
        "latency_ms": 12,
        "created_at": 1_700_000_000_000,
    }
    values.update(fields)
    return UsageRecord(**values)


class Captured(logging.Handler):
    """Collects records from one logger (attached to it directly: the app may stop propagation)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def usage_log() -> Iterator[Captured]:
    logger = logging.getLogger("omnigate.usage")
    handler = Captured()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
