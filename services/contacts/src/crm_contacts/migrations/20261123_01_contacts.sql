-- The contacts service's own tables. Every row that can move in a merge keeps the contact it
-- came from (origin_contact_id), so that an unmerge can send it back.

CREATE TABLE accounts (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    domain     text        UNIQUE,
    industry   text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX accounts_lower_name ON accounts (lower(name));
CREATE INDEX accounts_created ON accounts (created_at, id);

CREATE TABLE contacts (
    id          text        PRIMARY KEY,
    status      text        NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'merged', 'deleted', 'erased')),
    stage       text        NOT NULL,
    first_name  text,
    last_name   text,
    company     text,
    job_title   text,
    locale      text,
    country     text,
    city        text,
    timezone    text,
    custom      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    traits_time timestamptz,
    account_id  text        REFERENCES accounts (id),
    merged_into text        REFERENCES contacts (id),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at    timestamptz  -- merged, deleted or erased at
);
CREATE INDEX contacts_updated ON contacts (updated_at, id) WHERE status = 'active';
CREATE INDEX contacts_account ON contacts (account_id) WHERE status = 'active';
CREATE INDEX contacts_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX contacts_stage ON contacts (stage) WHERE status = 'active';

-- The identity graph. The primary key is what makes two concurrent creations of the same
-- person collide: the loser retries and finds the winner's row.
CREATE TABLE identifiers (
    kind              text        NOT NULL,
    value             text        NOT NULL,
    contact_id        text        NOT NULL REFERENCES contacts (id),
    origin_contact_id text        NOT NULL REFERENCES contacts (id),
    cause_event_id    text,
    linked_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX identifiers_contact ON identifiers (contact_id);

CREATE TABLE timeline (
    id                bigserial   PRIMARY KEY,
    contact_id        text        NOT NULL REFERENCES contacts (id),
    origin_contact_id text        NOT NULL REFERENCES contacts (id),
    source            text        NOT NULL,
    event_id          text        NOT NULL,
    type              text        NOT NULL,
    kind              text        NOT NULL,
    channel           text,
    time              timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    data              jsonb,
    UNIQUE (source, event_id)
);
CREATE INDEX timeline_contact_time ON timeline (contact_id, time DESC, id DESC);
CREATE INDEX timeline_contact_kind ON timeline (contact_id, kind);

-- Every consent statement; the effective consent is the latest by event time.
CREATE TABLE consent_history (
    id                bigserial   PRIMARY KEY,
    contact_id        text        NOT NULL REFERENCES contacts (id),
    origin_contact_id text        NOT NULL REFERENCES contacts (id),
    channel           text,
    purpose           text        NOT NULL,
    granted           boolean     NOT NULL,
    source            text        NOT NULL,
    actor             text,
    cause_event_id    text,
    note              text,
    time              timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX consent_history_contact ON consent_history (contact_id, purpose, channel, time DESC);

-- Projections of other services' events, for the 360 view.
CREATE TABLE scores (
    origin_contact_id text        PRIMARY KEY REFERENCES contacts (id),
    contact_id        text        NOT NULL REFERENCES contacts (id),
    model_version     text        NOT NULL,
    scores            jsonb       NOT NULL,
    time              timestamptz NOT NULL,
    event_id          text        NOT NULL
);
CREATE INDEX scores_contact ON scores (contact_id);

CREATE TABLE cases (
    case_id           text        PRIMARY KEY,
    contact_id        text        NOT NULL REFERENCES contacts (id),
    origin_contact_id text        NOT NULL REFERENCES contacts (id),
    title             text,
    queue             text,
    priority          text,
    status            text        NOT NULL,
    status_time       timestamptz NOT NULL,
    assignee          text,
    opened_at         timestamptz
);
CREATE INDEX cases_contact ON cases (contact_id);

CREATE TABLE enrolments (
    enrolment_id      text        PRIMARY KEY,
    campaign_id       text        NOT NULL,
    contact_id        text        NOT NULL REFERENCES contacts (id),
    origin_contact_id text        NOT NULL REFERENCES contacts (id),
    enrolled_at       timestamptz,
    converted_at      timestamptz,
    exited_at         timestamptz,
    exit_reason       text
);
CREATE INDEX enrolments_contact ON enrolments (contact_id);
CREATE INDEX enrolments_campaign ON enrolments (campaign_id);

CREATE TABLE merges (
    id             bigserial   PRIMARY KEY,
    survivor_id    text        NOT NULL REFERENCES contacts (id),
    merged_id      text        NOT NULL REFERENCES contacts (id),
    matched_on     text,
    cause_event_id text,
    actor          text,
    merged_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    unmerged_at    timestamptz,
    unmerge_reason text
);
CREATE INDEX merges_survivor ON merges (survivor_id);
CREATE INDEX merges_merged ON merges (merged_id);

-- Pairs an agent split apart: never merged again automatically. contact_a < contact_b.
CREATE TABLE merge_exclusions (
    contact_a  text        NOT NULL,
    contact_b  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (contact_a, contact_b),
    CHECK (contact_a < contact_b)
);

-- Tombstones: HMAC of each normalised identifier of an erased contact; nothing readable.
CREATE TABLE erased_identifiers (
    digest     text        PRIMARY KEY,
    erased_at  timestamptz NOT NULL,
    request_id text        NOT NULL
);

CREATE TABLE erasures (
    request_id   text        PRIMARY KEY,
    contact_id   text        NOT NULL REFERENCES contacts (id),
    requested_by text        NOT NULL,
    reason       text,
    requested_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX erasures_contact ON erasures (contact_id);

-- One row per service that reported an erasure done (ours included).
CREATE TABLE erasure_completions (
    request_id     text        NOT NULL,
    service        text        NOT NULL,
    contact_id     text        NOT NULL,
    records_erased integer,
    completed_at   timestamptz NOT NULL,
    PRIMARY KEY (request_id, service)
);

-- Responses of POSTs sent with an Idempotency-Key, replayed for a repeated request.
CREATE TABLE api_idempotency (
    principal    text        NOT NULL,
    operation    text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status_code  integer     NOT NULL,
    body         jsonb       NOT NULL,
    contact_id   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (principal, operation, key)
);
CREATE INDEX api_idempotency_contact ON api_idempotency (contact_id) WHERE contact_id IS NOT NULL;
