-- One row per gateway request: tokens, cost (NULL = unknown price), outcome.
-- depends: 0001_initial

CREATE TABLE usage_records (
    request_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NULL,
    latency_ms INTEGER NOT NULL,
    stream INTEGER NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0,
    fallback_used INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    error_code TEXT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX usage_records_project_created_idx ON usage_records (project_id, created_at);

CREATE INDEX usage_records_org_created_idx ON usage_records (org_id, created_at);
