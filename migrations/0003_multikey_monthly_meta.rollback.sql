-- Back to one key per project: each project keeps its oldest non-revoked key. A project with no live
-- key gets an unmatchable placeholder hash. The restored columns carry DEFAULT '' (SQLite cannot add
-- a NOT NULL column without a default). Extra keys, monthly budgets and credential meta are lost.

DROP INDEX usage_records_key_created_idx;

ALTER TABLE usage_records DROP COLUMN key_id;

ALTER TABLE provider_credentials DROP COLUMN meta;

ALTER TABLE organizations DROP COLUMN monthly_budget_micros;

ALTER TABLE projects DROP COLUMN monthly_budget_micros;

ALTER TABLE projects ADD COLUMN api_key_hash TEXT NOT NULL DEFAULT '';

ALTER TABLE projects ADD COLUMN api_key_prefix TEXT NOT NULL DEFAULT '';

UPDATE projects SET
    api_key_hash = COALESCE(
        (SELECT k.key_hash FROM api_keys k
         WHERE k.project_id = projects.id AND k.revoked_at IS NULL
         ORDER BY k.created_at, k.id LIMIT 1),
        'no-live-key:' || projects.id),
    api_key_prefix = COALESCE(
        (SELECT k.prefix FROM api_keys k
         WHERE k.project_id = projects.id AND k.revoked_at IS NULL
         ORDER BY k.created_at, k.id LIMIT 1),
        '');

CREATE UNIQUE INDEX projects_api_key_hash_uq ON projects (api_key_hash);

DROP TABLE api_keys;
