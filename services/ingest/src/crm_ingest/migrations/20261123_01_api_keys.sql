-- API keys of the channels: one source (CloudEvents `source`) may hold several active keys
-- at once, so that a channel can rotate without downtime. Only a SHA-256 of each key is
-- kept; the key itself is shown once, when it is created.
CREATE TABLE ingest_api_keys (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    source       text        NOT NULL CHECK (length(source) BETWEEN 1 AND 1024),
    prefix       text        NOT NULL UNIQUE,
    key_hash     bytea       NOT NULL CHECK (length(key_hash) = 32),
    description  text        NOT NULL DEFAULT '',
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE INDEX ingest_api_keys_by_source ON ingest_api_keys (source, created_at, id);
