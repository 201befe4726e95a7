-- The campaigns service's own tables (its own database). Times are event times: when the
-- contact did something, when a step is due, as the events say.

-- Segments: a rule tree (crm_campaigns.segments) over the contact projection below. A new or
-- changed segment is evaluated once over every known contact by the backfill job, in pages
-- after `backfill_after` (NULL: done); from then on only on events and when an answer comes
-- due by time.
CREATE TABLE segments (
    id             text        PRIMARY KEY,
    name           text        NOT NULL,
    description    text,
    rule           jsonb       NOT NULL,
    version        integer     NOT NULL DEFAULT 1,
    backfilling    boolean     NOT NULL DEFAULT true,
    backfill_after text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Campaigns: the definition (steps, goal, entry, exit, holdout, quiet hours) as the API took
-- it, and the lifecycle draft -> active <-> paused -> completed.
CREATE TABLE campaigns (
    id           text        PRIMARY KEY,
    name         text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'completed')),
    segment_id   text        REFERENCES segments (id),
    definition   jsonb       NOT NULL,
    launched_at  timestamptz,
    completed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX campaigns_segment ON campaigns (segment_id) WHERE status IN ('active', 'paused');

-- What campaigns knows of each contact, from contact, score, case and interaction events
-- (crm_campaigns.domain.ContactView). `consents` keeps, per purpose and channel, the latest
-- word by event time; `activity` the newest touchpoints per interaction kind.
CREATE TABLE contact_views (
    contact_id  text             PRIMARY KEY,
    stage       text,
    value_tier  text,
    churn_band  text,
    churn_risk  double precision,
    engagement  integer,
    clv         double precision,
    consents    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    traits      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    open_cases  jsonb            NOT NULL DEFAULT '{}'::jsonb,
    activity    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    closed_cases jsonb           NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz      NOT NULL DEFAULT clock_timestamp()
);

-- Who is in which segment. A row exists for a member, or for a contact whose answer will
-- change by time alone at `changes_at` (the segment timer re-evaluates exactly those).
CREATE TABLE memberships (
    segment_id text        NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id text        NOT NULL,
    member     boolean     NOT NULL,
    since      timestamptz,
    changes_at timestamptz,
    PRIMARY KEY (segment_id, contact_id)
);
CREATE INDEX memberships_due ON memberships (changes_at) WHERE changes_at IS NOT NULL;
CREATE INDEX memberships_contact ON memberships (contact_id);

-- One contact's way through one campaign. `next_step_id` is due at `due_at`; `held` while a
-- complaint case of the contact is open. At most one active enrolment per campaign and
-- contact; `entry` counts re-entries.
CREATE TABLE enrolments (
    id                text        PRIMARY KEY,
    campaign_id       text        NOT NULL REFERENCES campaigns (id),
    contact_id        text        NOT NULL,
    origin_contact_id text        NOT NULL,
    entry             integer     NOT NULL,
    arm               text        NOT NULL CHECK (arm IN ('treated', 'holdout')),
    status            text        NOT NULL CHECK (status IN ('active', 'exited')),
    entered_at        timestamptz NOT NULL,
    cause_event_id    text,
    next_step_id      text,
    due_at            timestamptz,
    held              boolean     NOT NULL DEFAULT false,
    exited_at         timestamptz,
    exit_reason       text,
    UNIQUE (campaign_id, origin_contact_id, entry)
);
CREATE UNIQUE INDEX enrolments_one_active ON enrolments (campaign_id, contact_id)
    WHERE status = 'active';
CREATE INDEX enrolments_due ON enrolments (due_at)
    WHERE status = 'active' AND NOT held AND due_at IS NOT NULL;
CREATE INDEX enrolments_contact ON enrolments (contact_id);

-- The send ledger: one row per enrolment and step, whatever the restarts, replicas and
-- redeliveries. `outcome` says what became of the step: sent (campaign.step_due emitted, with
-- `event_id`), or held back for the holdout arm.
CREATE TABLE sends (
    enrolment_id text        NOT NULL REFERENCES enrolments (id),
    step_id      text        NOT NULL,
    campaign_id  text        NOT NULL,
    contact_id   text        NOT NULL,
    channel      text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('sent', 'holdout')),
    at           timestamptz NOT NULL,
    event_id     text,
    PRIMARY KEY (enrolment_id, step_id)
);
CREATE INDEX sends_cap ON sends (contact_id, channel, at) WHERE outcome = 'sent';
CREATE INDEX sends_campaign ON sends (campaign_id, step_id);

-- Frequency caps per channel, across every campaign: at most max_sends non-transactional
-- steps per contact in any rolling window of window_seconds.
CREATE TABLE frequency_caps (
    channel        text        PRIMARY KEY,
    max_sends      integer     NOT NULL CHECK (max_sends >= 1),
    window_seconds integer     NOT NULL CHECK (window_seconds >= 1),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Touches: interactions that name a campaign and step (an email click on step s2).
CREATE TABLE touches (
    event_id     text        PRIMARY KEY,
    enrolment_id text        NOT NULL REFERENCES enrolments (id),
    campaign_id  text        NOT NULL,
    step_id      text        NOT NULL,
    contact_id   text        NOT NULL,
    kind         text        NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX touches_enrolment ON touches (enrolment_id, at);

-- Conversions: the first goal interaction of an enrolment within its window (also after the
-- contact exited), with the credit of each step under the campaign's attribution model.
CREATE TABLE conversions (
    enrolment_id text        PRIMARY KEY REFERENCES enrolments (id),
    campaign_id  text        NOT NULL,
    contact_id   text        NOT NULL,
    event_id     text        NOT NULL,
    kind         text        NOT NULL,
    at           timestamptz NOT NULL,
    revenue      numeric(14, 2),
    currency     text,
    step_id      text,
    credits      jsonb       NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX conversions_campaign ON conversions (campaign_id);

-- The example campaigns and segments created at start (crm_campaigns/examples): each once,
-- so that one deleted or changed by hand is not brought back.
CREATE TABLE examples_loaded (
    id        text        PRIMARY KEY,
    loaded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
