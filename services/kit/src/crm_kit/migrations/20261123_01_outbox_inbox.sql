-- Transactional outbox: rows written in the same transaction as the state change,
-- published by the relay in id order, then marked sent.
CREATE TABLE kit_outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea,
    headers    jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX kit_outbox_unsent ON kit_outbox (id) WHERE sent_at IS NULL;

-- Wake the relay at commit time instead of having it poll.
CREATE FUNCTION kit_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kit_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER kit_outbox_notify AFTER INSERT ON kit_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION kit_outbox_notify();

-- Idempotent consumer: one row per (consumer, source, id) applied.
CREATE TABLE kit_inbox (
    consumer     text        NOT NULL,
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source, event_id)
);
