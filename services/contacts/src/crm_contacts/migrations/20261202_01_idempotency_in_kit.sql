-- The answers of idempotent POSTs moved to the kit's table (the kit's migrations run first):
-- the stored answers keep being replayed, and an erasure finds them there.
INSERT INTO kit_idempotency (
    principal, operation, key, request_hash, status_code, body, subject, created_at
)
SELECT principal, operation, key, request_hash, status_code, body, contact_id, created_at
FROM api_idempotency
ON CONFLICT DO NOTHING;
DROP TABLE api_idempotency;
