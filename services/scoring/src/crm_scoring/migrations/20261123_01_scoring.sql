-- What scoring knows about each contact: the facts it scores from (one row per event that
-- counts, keyed by the event's identity so that a replay cannot add a fact twice), the
-- latest scores, the changes it published, merges and erasures.
CREATE TABLE scoring_facts (
    fact_id           text        PRIMARY KEY,
    contact_id        text        NOT NULL,
    origin_contact_id text        NOT NULL,  -- the contact the event was for (before merges)
    kind              text        NOT NULL,
    occurred_at       timestamptz NOT NULL,  -- event time
    channel           text,
    amount            numeric(24, 6),
    currency          text,
    csat              smallint,
    nps               smallint,
    case_id           text,
    detail            text,
    event_id          text        NOT NULL,  -- CloudEvents id of the event that brought it
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scoring_facts_contact ON scoring_facts (contact_id);
CREATE INDEX scoring_facts_origin ON scoring_facts (origin_contact_id);

CREATE TABLE scoring_contacts (
    contact_id      text             PRIMARY KEY,
    model_version   text             NOT NULL,
    as_of           timestamptz      NOT NULL,  -- the moment the scores are computed for
    evaluated_at    timestamptz      NOT NULL DEFAULT now(),
    engagement      smallint         NOT NULL,
    engagement_band text             NOT NULL,
    recency         smallint         NOT NULL,
    frequency       smallint         NOT NULL,
    monetary        smallint         NOT NULL,
    value_tier      text             NOT NULL,
    clv             numeric(24, 2)   NOT NULL,
    currency        text             NOT NULL,
    churn_risk      double precision NOT NULL,
    churn_band      text             NOT NULL,
    reasons         jsonb            NOT NULL DEFAULT '[]'::jsonb,
    cause_event_id  text,
    published       jsonb  -- the scores last published on crm.scores.v1 (null: never)
);
CREATE INDEX scoring_contacts_engagement ON scoring_contacts (engagement DESC, contact_id);
CREATE INDEX scoring_contacts_clv ON scoring_contacts (clv DESC, contact_id);
CREATE INDEX scoring_contacts_churn ON scoring_contacts (churn_risk DESC, contact_id);
CREATE INDEX scoring_contacts_as_of ON scoring_contacts (as_of);

-- Every published crm.score.changed, for the history API.
CREATE TABLE scoring_history (
    id          bigserial   PRIMARY KEY,
    contact_id  text        NOT NULL,
    event_id    text        NOT NULL,
    as_of       timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    change      jsonb       NOT NULL
);
CREATE INDEX scoring_history_contact ON scoring_history (contact_id, id DESC);

-- Contacts merged into another: their late events count for the survivor.
CREATE TABLE scoring_aliases (
    merged_id   text        PRIMARY KEY,
    survivor_id text        NOT NULL,
    merged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scoring_aliases_survivor ON scoring_aliases (survivor_id);

-- Erased contacts (opaque ids only): late or replayed events for them are dropped.
CREATE TABLE scoring_erased (
    contact_id text        PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);
