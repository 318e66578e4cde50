"""Usage rows: idempotent batched insert, listing, counting and spend sums over ``usage_records``."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from omnigate.store.database import Queryable
from omnigate.usage.records import UsageRecord

__all__ = ["count_usage", "insert_usage", "is_permanent_error", "list_usage", "spend_since"]

# ON CONFLICT … DO NOTHING: a replayed batch (retry after an unacknowledged commit) never double-counts.
# Works on PostgreSQL and SQLite >= 3.24.
_INSERT = """
INSERT INTO usage_records (
    request_id, org_id, project_id, key_id, provider, model, status, http_status,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cost_micros, latency_ms, stream, cached, fallback_used, attempts, error_code, created_at,
    client_request_id
) VALUES (
    :request_id, :org_id, :project_id, :key_id, :provider, :model, :status, :http_status,
    :input_tokens, :output_tokens, :cache_read_tokens, :cache_write_tokens, :reasoning_tokens,
    :cost_micros, :latency_ms, :stream, :cached, :fallback_used, :attempts, :error_code, :created_at,
    :client_request_id
)
ON CONFLICT (request_id) DO NOTHING
"""

# Every column with its PostgreSQL type, in the order `_values` gives them.
_COLUMN_TYPES = (
    ("request_id", "text"), ("org_id", "text"), ("project_id", "text"), ("key_id", "text"),
    ("provider", "text"), ("model", "text"), ("status", "text"), ("http_status", "integer"),
    ("input_tokens", "bigint"), ("output_tokens", "bigint"), ("cache_read_tokens", "bigint"),
    ("cache_write_tokens", "bigint"), ("reasoning_tokens", "bigint"), ("cost_micros", "bigint"),
    ("latency_ms", "integer"), ("stream", "integer"), ("cached", "integer"), ("fallback_used", "integer"),
    ("attempts", "integer"), ("error_code", "text"), ("created_at", "bigint"), ("client_request_id", "text"),
)  # fmt: skip
_FIELDS = tuple(name for name, _ in _COLUMN_TYPES)

# PostgreSQL takes a batch as one statement whose one parameter is the rows as a JSON array of arrays:
# usage_records' statement-level trigger (migration 0004) then updates the hourly rollups once per
# batch, from the rows really inserted. JSON rather than one array parameter per column: asyncpg checks
# every element of an array parameter against the iterable ABCs (Python-level isinstance calls per
# value), ~55k instructions per record, more than half again what the whole insert costs now.
_PG_INSERT_BATCH = (
    f"INSERT INTO usage_records ({', '.join(_FIELDS)})\nSELECT "
    + ", ".join(f"CAST(r ->> {at} AS {kind})" for at, (_, kind) in enumerate(_COLUMN_TYPES))
    + "\nFROM json_array_elements(CAST(:rows AS json)) AS r\nON CONFLICT (request_id) DO NOTHING"
)
_COLUMNS = f" {', '.join(_FIELDS)} "  # for SELECT lists
_LIST = (
    "SELECT" + _COLUMNS + "FROM usage_records WHERE project_id = :project_id ORDER BY created_at, request_id"
)
_LIST_SINCE = (
    "SELECT" + _COLUMNS + "FROM usage_records WHERE project_id = :project_id AND created_at >= :since "
    "ORDER BY created_at, request_id"
)
_COUNT = "SELECT COUNT(*) FROM usage_records"

# One fixed statement per filter combination (no optional parameters: on PostgreSQL a missing one
# would silently become NULL). SUM ignores NULL costs: unknown prices are not counted as $0 spend.
_SPEND = {
    (False, False): "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_records WHERE created_at >= :since",
    (True, False): (
        "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_records WHERE org_id = :org_id AND created_at >= :since"
    ),
    (False, True): (
        "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_records "
        "WHERE project_id = :project_id AND created_at >= :since"
    ),
    (True, True): (
        "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_records "
        "WHERE org_id = :org_id AND project_id = :project_id AND created_at >= :since"
    ),
}


def _values(record: UsageRecord) -> tuple[Any, ...]:
    """The record's column values, in ``_FIELDS`` order."""
    return (
        record.request_id,
        record.org_id,
        record.project_id,
        record.key_id,
        record.provider,
        record.model,
        record.status,
        int(record.http_status),
        int(record.input_tokens),
        int(record.output_tokens),
        int(record.cache_read_tokens),
        int(record.cache_write_tokens),
        int(record.reasoning_tokens),
        None if record.cost_micros is None else int(record.cost_micros),
        int(record.latency_ms),
        int(bool(record.stream)),
        int(bool(record.cached)),
        int(bool(record.fallback_used)),
        int(record.attempts),
        record.error_code,
        int(record.created_at),
        record.client_request_id,
    )


def _record(row: Mapping[str, Any]) -> UsageRecord:
    return UsageRecord(
        request_id=row["request_id"],
        org_id=row["org_id"],
        project_id=row["project_id"],
        key_id=row["key_id"],
        provider=row["provider"],
        model=row["model"],
        status=row["status"],
        http_status=row["http_status"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cost_micros=row["cost_micros"],
        latency_ms=row["latency_ms"],
        stream=bool(row["stream"]),
        cached=bool(row["cached"]),
        fallback_used=bool(row["fallback_used"]),
        attempts=row["attempts"],
        error_code=row["error_code"],
        created_at=row["created_at"],
        client_request_id=row["client_request_id"],
    )


async def insert_usage(db: Queryable, records: Sequence[UsageRecord]) -> None:
    """Insert ``records`` in one transaction (one driver executemany); rows already present are skipped.

    On PostgreSQL the batch is one statement (the rollup triggers then run once per batch); on SQLite
    one statement per row.
    """
    if not records:
        return
    rows = [_values(record) for record in records]
    if db.dialect == "postgresql":
        await db.execute_many(_PG_INSERT_BATCH, [{"rows": orjson.dumps(rows).decode()}])
        return
    await db.execute_many(_INSERT, [dict(zip(_FIELDS, row, strict=True)) for row in rows])


async def list_usage(db: Queryable, project_id: str, since_ms: int | None = None) -> list[UsageRecord]:
    """A project's usage rows, oldest first (optionally only those created at or after ``since_ms``)."""
    if since_ms is None:
        rows = await db.fetch_all(_LIST, {"project_id": project_id})
    else:
        rows = await db.fetch_all(_LIST_SINCE, {"project_id": project_id, "since": since_ms})
    return [_record(row) for row in rows]


async def count_usage(db: Queryable) -> int:
    """The number of usage rows in the table."""
    return int(await db.fetch_val(_COUNT))


async def spend_since(
    db: Queryable, *, org_id: str | None = None, project_id: str | None = None, since_ms: int
) -> int:
    """Known spend in micro-USD since ``since_ms`` (rows with an unknown price contribute nothing)."""
    values: dict[str, Any] = {"since": since_ms}
    if org_id is not None:
        values["org_id"] = org_id
    if project_id is not None:
        values["project_id"] = project_id
    total = await db.fetch_val(_SPEND[(org_id is not None, project_id is not None)], values)
    return int(total or 0)


def is_permanent_error(exc: BaseException) -> bool:
    """True when retrying the same rows cannot succeed (bad data), False for transient failures.

    Bad values rejected client-side (asyncpg's DataError is a ValueError; SQLite raises
    OverflowError), SQLite integrity/data errors, and PostgreSQL SQLSTATE classes 22 (data exception)
    and 23 (integrity violation). Everything else (connection loss, missing table, lock timeouts) is
    transient.
    """
    if isinstance(exc, ValueError | TypeError | OverflowError | sqlite3.IntegrityError | sqlite3.DataError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23")
