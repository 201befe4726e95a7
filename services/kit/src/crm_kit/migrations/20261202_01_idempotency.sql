-- Answers of POSTs sent with an Idempotency-Key, replayed for a repeated request.
-- `subject` is whom the answer is about (a contact id): an erasure deletes its answers.
CREATE TABLE kit_idempotency (
    principal    text        NOT NULL,
    operation    text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status_code  integer     NOT NULL,
    body         jsonb       NOT NULL,
    subject      text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (principal, operation, key)
);
CREATE INDEX kit_idempotency_subject ON kit_idempotency (subject) WHERE subject IS NOT NULL;
