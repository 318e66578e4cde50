-- Many API keys per project (existing keys carried over as "default"), monthly budgets, credential meta.
-- depends: 0002_usage

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    allowed_models TEXT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    revoked_at BIGINT NULL
);

CREATE UNIQUE INDEX api_keys_key_hash_uq ON api_keys (key_hash);

CREATE INDEX api_keys_project_created_idx ON api_keys (project_id, created_at);

INSERT INTO api_keys (id, project_id, name, key_hash, prefix, allowed_models, created_at, last_used_at, revoked_at)
SELECT 'key_' || id, id, 'default', api_key_hash, api_key_prefix, NULL, created_at, NULL, NULL
FROM projects;

DROP INDEX projects_api_key_hash_uq;

ALTER TABLE projects DROP COLUMN api_key_hash;

ALTER TABLE projects DROP COLUMN api_key_prefix;

ALTER TABLE projects ADD COLUMN monthly_budget_micros BIGINT NULL;

ALTER TABLE organizations ADD COLUMN monthly_budget_micros BIGINT NULL;

ALTER TABLE provider_credentials ADD COLUMN meta TEXT NULL;

ALTER TABLE usage_records ADD COLUMN key_id TEXT NULL;

CREATE INDEX usage_records_key_created_idx ON usage_records (key_id, created_at);
