"""Hourly usage rollups with latency histograms, kept exact by triggers (PostgreSQL only; SQLite skips)."""

# ruff: noqa: S608 - every SQL fragment is a constant of this file
from __future__ import annotations

import sqlite3
from typing import Any

from yoyo import step

__depends__ = {"0003_multikey_monthly_meta"}
__transactional__ = False

# Rows: per organisation (project_id '') and per project, per hour (created_at / 3600000), per
# dimension: '' (every record), 'model', 'provider', 'status' and, per project only, 'key' ('no_key'
# for records without one). Statement-level triggers keep them equal to usage_records: inserts add the
# transition table (rows an ON CONFLICT DO NOTHING skipped are not in it), deletes and updates rebuild
# the organisation-hours they touch, TRUNCATE empties them.
#
# Latency bins b0..b288 (NULL when empty): 0..31 ms exactly (negative latencies in b0); from 32 ms each
# power of two in 16 bins, bin = 16e - 64 + (ms >> (e - 4)) for 2^e <= ms < 2^(e+1), up to 2^21 ms;
# b288 above. Every value in a bin is within 1/32 of the bin's midpoint.
BINS = 289
HOUR_MS = 3_600_000
_BIN_NAMES = [f"b{i}" for i in range(BINS)]
_COUNTERS = (
    "requests",
    "errors",
    "cache_hits",
    "fallbacks",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micros",
    "unpriced",
)
_KEY = ("org_id", "dimension", "hour", "project_id", "value")


def _bin_case() -> str:
    octaves = "\n".join(
        f"        WHEN ms < {1 << (e + 1)} THEN {16 * e - 64} + (ms >> {e - 4})" for e in range(5, 21)
    )
    return f"CASE\n        WHEN ms < 32 THEN GREATEST(ms, 0)\n{octaves}\n        ELSE {BINS - 1}\n    END"


_TABLE = (
    "CREATE TABLE IF NOT EXISTS usage_rollups (\n"
    "    org_id TEXT NOT NULL,\n"
    "    dimension TEXT NOT NULL,\n"
    "    hour BIGINT NOT NULL,\n"
    "    project_id TEXT NOT NULL,\n"
    "    value TEXT NOT NULL,\n"
    + "".join(f"    {name} BIGINT NOT NULL,\n" for name in _COUNTERS)
    + "    latency_min INTEGER NOT NULL,\n"
    "    latency_max INTEGER NOT NULL,\n"
    + "".join(f"    {name} INTEGER NULL,\n" for name in _BIN_NAMES)
    + "    PRIMARY KEY (org_id, dimension, hour, project_id, value)\n"
    ") WITH (fillfactor = 80)"
)

_BIN_FUNCTION = (
    "CREATE OR REPLACE FUNCTION usage_latency_bin(ms INTEGER) RETURNS INTEGER\n"
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n"
    f"    SELECT {_bin_case()}\n"
    "$$"
)

# Bin counts of a set of latencies (index i + 1 holds bin i): one pass, no per-bin aggregate.
_HISTOGRAM_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_latency_histogram(latencies INTEGER[]) RETURNS INTEGER[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    counts INTEGER[] := array_fill(0, ARRAY[{BINS}]);
    ms INTEGER;
    b INTEGER;
BEGIN
    FOREACH ms IN ARRAY latencies LOOP
        b := 1 + {_bin_case()};
        counts[b] := counts[b] + 1;
    END LOOP;
    RETURN counts;
END
$$"""

# percentile_cont's interpolation between the order statistics at ranks floor(p(n-1)) and the next,
# each estimated by its bin's midpoint (an exact value below 32 ms) clamped into [low, high].
_PERCENTILES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_latency_percentiles(
    bins BIGINT[], total BIGINT, low INTEGER, high INTEGER, fractions DOUBLE PRECISION[]
) RETURNS DOUBLE PRECISION[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    targets BIGINT[] := '{{}}';
    estimates DOUBLE PRECISION[] := '{{}}';
    result DOUBLE PRECISION[] := '{{}}';
    p DOUBLE PRECISION;
    k BIGINT;
    pos DOUBLE PRECISION;
    lower_value DOUBLE PRECISION;
    upper_value DOUBLE PRECISION;
    n BIGINT;
    seen BIGINT := 0;
    b INTEGER := 0;
    t INTEGER := 1;
    width_bits INTEGER;
    estimate DOUBLE PRECISION;
BEGIN
    IF total IS NULL OR total < 1 THEN
        RETURN NULL;
    END IF;
    FOREACH p IN ARRAY fractions LOOP
        k := floor(p * (total - 1));
        IF cardinality(targets) = 0 OR k > targets[cardinality(targets)] THEN
            targets := targets || k;
        END IF;
        IF k + 1 < total AND k + 1 > targets[cardinality(targets)] THEN
            targets := targets || (k + 1);
        END IF;
    END LOOP;
    FOREACH n IN ARRAY bins LOOP
        IF n > 0 THEN
            seen := seen + n;
            WHILE t <= cardinality(targets) AND seen > targets[t] LOOP
                IF b < 32 THEN
                    estimate := b;
                ELSIF b >= {BINS - 1} THEN
                    estimate := high;
                ELSE
                    width_bits := b / 16 - 1;
                    estimate := ((mod(b, 16) + 16) << width_bits) + ((1 << width_bits) - 1) / 2.0;
                END IF;
                estimates := estimates || LEAST(GREATEST(estimate, low), high);
                t := t + 1;
            END LOOP;
            EXIT WHEN t > cardinality(targets);
        END IF;
        b := b + 1;
    END LOOP;
    FOREACH p IN ARRAY fractions LOOP
        pos := p * (total - 1);
        k := floor(pos);
        lower_value := estimates[array_position(targets, k)];
        upper_value := COALESCE(estimates[array_position(targets, k + 1)], lower_value);
        result := result || (lower_value + (pos - k) * (upper_value - lower_value));
    END LOOP;
    RETURN result;
END
$$"""


def _add(source: str) -> str:
    """Add the records of ``source`` (a relation with usage_records' columns) to the rollups."""
    sums = ",\n        ".join(f"SUM(k.{name}) AS {name}" for name in _COUNTERS[1:])
    updates = ",\n    ".join(
        [f"{name} = r.{name} + EXCLUDED.{name}" for name in _COUNTERS]
        + [
            "latency_min = LEAST(r.latency_min, EXCLUDED.latency_min)",
            "latency_max = GREATEST(r.latency_max, EXCLUDED.latency_max)",
        ]
        + [f"{b} = COALESCE(r.{b} + EXCLUDED.{b}, r.{b}, EXCLUDED.{b})" for b in _BIN_NAMES]
    )
    columns = ", ".join([*_KEY, *_COUNTERS, "latency_min", "latency_max", *_BIN_NAMES])
    key = ", ".join(_KEY)
    values = ", ".join([*(f"g.{name}" for name in _KEY), *_COUNTERS, "latency_min", "latency_max"])
    bins = ", ".join(f"NULLIF(g.h[{i + 1}], 0)" for i in range(BINS))
    return f"""
INSERT INTO usage_rollups AS r ({columns})
SELECT {values},
    {bins}
FROM (
    SELECT {", ".join(f"k.{name}" for name in _KEY)}, COUNT(*) AS requests,
        {sums},
        MIN(k.latency_ms) AS latency_min, MAX(k.latency_ms) AS latency_max,
        usage_latency_histogram(array_agg(k.latency_ms)) AS h
    FROM (
        SELECT u.org_id, d.dimension, u.created_at / {HOUR_MS} AS hour, d.project_id, d.value, u.latency_ms,
            CASE WHEN u.status IN ('error', 'truncated') THEN 1 ELSE 0 END AS errors,
            CASE WHEN u.status = 'cache_hit' THEN 1 ELSE 0 END AS cache_hits,
            u.fallback_used AS fallbacks, u.input_tokens, u.output_tokens, u.cache_read_tokens,
            u.cache_write_tokens, u.reasoning_tokens, COALESCE(u.cost_micros, 0) AS cost_micros,
            CASE WHEN u.cost_micros IS NULL THEN 1 ELSE 0 END AS unpriced
        FROM {source} u
        CROSS JOIN LATERAL (VALUES
            (u.project_id, '', ''),
            (u.project_id, 'model', u.model),
            (u.project_id, 'provider', u.provider),
            (u.project_id, CASE WHEN u.key_id IS NULL THEN 'no_key' ELSE 'key' END, COALESCE(u.key_id, '')),
            (u.project_id, 'status', u.status),
            ('', '', ''),
            ('', 'model', u.model),
            ('', 'provider', u.provider),
            ('', 'status', u.status)
        ) AS d (project_id, dimension, value)
    ) k
    GROUP BY {", ".join(f"k.{name}" for name in _KEY)}
) g
ORDER BY {", ".join(f"g.{name}" for name in _KEY)}
ON CONFLICT ({key}) DO UPDATE SET
    {updates}"""


_PENDING_TABLE = (
    "CREATE TABLE IF NOT EXISTS usage_rollups_pending (\n"
    "    org_id TEXT NOT NULL,\n"
    "    hour BIGINT NOT NULL,\n"
    "    PRIMARY KEY (org_id, hour)\n"
    ")"
)
_PENDING_CHUNK = f"(SELECT org_id, hour * {HOUR_MS} AS created_at FROM usage_rollups_pending ORDER BY hour, org_id LIMIT hours)"

# The organisation-hours a set of rows touches: their rollups are rebuilt from the rows left (LATERAL
# and OFFSET 0 make each hour one range scan of the (org_id, created_at) index).
_REBUILD = """
    DELETE FROM usage_rollups r USING (SELECT DISTINCT org_id, created_at / {hour} AS hour FROM {rows} AS changed) t
    WHERE r.org_id = t.org_id AND r.dimension IN ({dimensions}) AND r.hour = t.hour;
    {add};"""
_TOUCHED = (
    "(SELECT u.* FROM (SELECT DISTINCT org_id, created_at / {hour} AS hour FROM {rows} AS changed) t"
    " CROSS JOIN LATERAL (SELECT * FROM usage_records WHERE org_id = t.org_id"
    " AND created_at >= t.hour * {hour} AND created_at < (t.hour + 1) * {hour} OFFSET 0) u)"
)
_DIMENSIONS = "'', 'model', 'provider', 'key', 'no_key', 'status'"


def _rebuild(rows: str) -> str:
    touched = _TOUCHED.replace("{hour}", str(HOUR_MS)).replace("{rows}", rows)
    rebuild = (
        _REBUILD.replace("{hour}", str(HOUR_MS)).replace("{rows}", rows).replace("{dimensions}", _DIMENSIONS)
    )
    return rebuild.replace("{add}", _add(touched))


# Enough for the planner to hash the grouping in memory (it budgets 8 kB per array_agg group).
_WORK_MEM = " SET work_mem = '64MB' "

_FUNCTIONS = [
    "CREATE OR REPLACE FUNCTION usage_rollups_on_insert() RETURNS trigger LANGUAGE plpgsql"
    + _WORK_MEM
    + "AS $$\nBEGIN\n"
    + _add("new_rows")
    + ";\n    RETURN NULL;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION usage_rollups_on_delete() RETURNS trigger LANGUAGE plpgsql"
    + _WORK_MEM
    + "AS $$\nBEGIN"
    + _rebuild("old_rows")
    + "\n    RETURN NULL;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION usage_rollups_on_update() RETURNS trigger LANGUAGE plpgsql"
    + _WORK_MEM
    + "AS $$\nBEGIN"
    + _rebuild("(SELECT org_id, created_at FROM old_rows UNION SELECT org_id, created_at FROM new_rows)")
    + "\n    RETURN NULL;\nEND\n$$",
    "CREATE OR REPLACE FUNCTION usage_rollups_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n    TRUNCATE usage_rollups, usage_rollups_pending;\n    RETURN NULL;\nEND\n$$",
    # Rebuilds up to `hours` pending organisation-hours (oldest first); returns how many it took.
    "CREATE OR REPLACE FUNCTION usage_rollups_backfill(hours INTEGER) RETURNS INTEGER LANGUAGE plpgsql"
    + _WORK_MEM
    + "AS $$\n"
    "DECLARE\n    taken INTEGER;\nBEGIN"
    + _rebuild(_PENDING_CHUNK)
    + "\n    DELETE FROM usage_rollups_pending p USING "
    + _PENDING_CHUNK
    + " AS c\n    WHERE p.org_id = c.org_id AND p.hour = c.created_at / "
    + str(HOUR_MS)
    + ";\n    GET DIAGNOSTICS taken = ROW_COUNT;\n    RETURN taken;\nEND\n$$",
]

_TRIGGERS = {
    "usage_rollups_insert": "AFTER INSERT ON usage_records REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION usage_rollups_on_insert()",
    "usage_rollups_delete": "AFTER DELETE ON usage_records REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION usage_rollups_on_delete()",
    "usage_rollups_update": "AFTER UPDATE ON usage_records REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION usage_rollups_on_update()",
    "usage_rollups_truncate": "AFTER TRUNCATE ON usage_records"
    " FOR EACH STATEMENT EXECUTE FUNCTION usage_rollups_on_truncate()",
}

# One short transaction (creating the triggers holds writers back until it commits): from then on the
# triggers count every new row, and every organisation-hour that already had rows is pending. Safe to
# run again after an interrupted migration: pending hours are rebuilt from the raw rows.
SETUP = [
    _TABLE,
    _PENDING_TABLE,
    "CREATE INDEX IF NOT EXISTS usage_rollups_project_idx ON usage_rollups (project_id, dimension, hour)",
    _BIN_FUNCTION,
    _HISTOGRAM_FUNCTION,
    _PERCENTILES_FUNCTION,
    *_FUNCTIONS,
    *(f"DROP TRIGGER IF EXISTS {name} ON usage_records" for name in _TRIGGERS),
    *(f"CREATE TRIGGER {name} {definition}" for name, definition in _TRIGGERS.items()),
    f"INSERT INTO usage_rollups_pending (org_id, hour) SELECT DISTINCT org_id, created_at / {HOUR_MS}"
    " FROM usage_records ON CONFLICT DO NOTHING",
]

ROLLBACK = [
    *(f"DROP TRIGGER IF EXISTS {name} ON usage_records" for name in _TRIGGERS),
    "DROP FUNCTION IF EXISTS usage_rollups_on_insert()",
    "DROP FUNCTION IF EXISTS usage_rollups_on_delete()",
    "DROP FUNCTION IF EXISTS usage_rollups_on_update()",
    "DROP FUNCTION IF EXISTS usage_rollups_on_truncate()",
    "DROP FUNCTION IF EXISTS usage_rollups_backfill(INTEGER)",
    "DROP FUNCTION IF EXISTS usage_latency_percentiles(BIGINT[], BIGINT, INTEGER, INTEGER, DOUBLE PRECISION[])",
    "DROP FUNCTION IF EXISTS usage_latency_histogram(INTEGER[])",
    "DROP FUNCTION IF EXISTS usage_latency_bin(INTEGER)",
    "DROP TABLE IF EXISTS usage_rollups_pending",
    "DROP TABLE IF EXISTS usage_rollups",
]

# Organisation-hours per backfill transaction: each holds its hours' rollup rows for about a second.
BACKFILL_HOURS = 8


def apply(conn: Any) -> None:
    if isinstance(conn, sqlite3.Connection):  # embedded SQLite answers analytics from raw rows
        return
    with conn.transaction():
        for statement in SETUP:
            conn.execute(statement)
    while conn.execute("SELECT usage_rollups_backfill(%s)", (BACKFILL_HOURS,)).fetchone()[0]:
        pass


def rollback(conn: Any) -> None:
    if isinstance(conn, sqlite3.Connection):
        return
    with conn.transaction():
        for statement in ROLLBACK:
            conn.execute(statement)


step(apply, rollback)
