-- Drops the client's request ids (records keep the gateway's own).

ALTER TABLE usage_records DROP COLUMN client_request_id;
