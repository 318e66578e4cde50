-- The client's own x-request-id beside request_id, which the gateway now always mints: a client's id
-- may repeat (retries, fixed values, another tenant's), and the record's key must not.
-- depends: 0004_usage_rollups

ALTER TABLE usage_records ADD COLUMN client_request_id TEXT NULL;
