-- The cases service's own tables (its own database). Times are event times: when the
-- customer wrote, when the agent answered, as the interaction or the request says.

-- Business-hours calendars: an IANA zone, weekly hours and holidays (crm_cases.calendar).
CREATE TABLE case_calendars (
    id         text        PRIMARY KEY,
    time_zone  text        NOT NULL,
    hours      jsonb       NOT NULL,
    holidays   jsonb       NOT NULL DEFAULT '[]'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO case_calendars (id, time_zone, hours) VALUES (
    'always', 'UTC',
    '{"mon": [["00:00", "24:00"]], "tue": [["00:00", "24:00"]], "wed": [["00:00", "24:00"]],
      "thu": [["00:00", "24:00"]], "fri": [["00:00", "24:00"]], "sat": [["00:00", "24:00"]],
      "sun": [["00:00", "24:00"]]}'::jsonb
);

-- One SLA policy per priority: per metric a target in business seconds and the statuses in
-- which that metric's clock pauses, counted on one calendar.
CREATE TABLE case_sla_policies (
    priority    text        PRIMARY KEY CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    name        text        NOT NULL,
    calendar_id text        NOT NULL REFERENCES case_calendars (id),
    targets     jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO case_sla_policies (priority, name, calendar_id, targets) VALUES
('urgent', 'Urgent', 'always', '{
  "first_response": {"seconds": 1800,  "pauses_in": []},
  "next_response":  {"seconds": 3600,  "pauses_in": ["on_hold"]},
  "resolution":     {"seconds": 14400, "pauses_in": ["pending", "on_hold"]}}'::jsonb),
('high', 'High', 'always', '{
  "first_response": {"seconds": 3600,  "pauses_in": []},
  "next_response":  {"seconds": 14400, "pauses_in": ["on_hold"]},
  "resolution":     {"seconds": 28800, "pauses_in": ["pending", "on_hold"]}}'::jsonb),
('normal', 'Normal', 'always', '{
  "first_response": {"seconds": 14400, "pauses_in": []},
  "next_response":  {"seconds": 28800, "pauses_in": ["on_hold"]},
  "resolution":     {"seconds": 86400, "pauses_in": ["pending", "on_hold"]}}'::jsonb),
('low', 'Low', 'always', '{
  "first_response": {"seconds": 28800,  "pauses_in": []},
  "next_response":  {"seconds": 86400,  "pauses_in": ["on_hold"]},
  "resolution":     {"seconds": 259200, "pauses_in": ["pending", "on_hold"]}}'::jsonb);

CREATE TABLE cases (
    id                   text        PRIMARY KEY,
    contact_id           text        NOT NULL,
    origin_contact_id    text        NOT NULL,  -- whose it was before any merge (an unmerge)
    subject              text        NOT NULL,
    description          text,
    channel              text,
    category             text,
    queue                text        NOT NULL,
    priority             text        NOT NULL,
    priority_set_by      text        NOT NULL DEFAULT 'value' CHECK (priority_set_by IN ('value', 'agent')),
    status               text        NOT NULL,
    assignee             text,
    opened_at            timestamptz NOT NULL,
    first_response_at    timestamptz,
    last_customer_at     timestamptz,
    last_agent_at        timestamptz,
    awaiting_agent       boolean     NOT NULL DEFAULT true,
    customer_replied_after_response boolean NOT NULL DEFAULT false,
    resolved_at          timestamptz,
    resolved_by          text,
    resolution           text,
    closed_at            timestamptz,
    reopened             integer     NOT NULL DEFAULT 0,
    fcr                  boolean,
    csat                 integer,
    csat_at              timestamptz,
    linked_case_id       text,
    cause_event_id       text,
    erased               boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cases_contact_open ON cases (contact_id, category)
    WHERE status IN ('new', 'open', 'pending', 'on_hold');
CREATE INDEX cases_contact ON cases (contact_id, opened_at, id);
CREATE INDEX cases_list ON cases (opened_at DESC, id DESC);

-- What happened on a case, in order: interactions attached to it, agents' comments.
CREATE TABLE case_activity (
    case_id     text        NOT NULL REFERENCES cases (id),
    n           bigserial,
    kind        text        NOT NULL,   -- customer | agent | comment
    at          timestamptz NOT NULL,
    author      text,
    event_id    text,
    channel     text,
    body        text,
    internal    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (case_id, n)
);

-- One clock per case, metric and cycle (crm_cases.sla.Clock).
CREATE TABLE case_sla_clocks (
    case_id        text        NOT NULL REFERENCES cases (id),
    metric         text        NOT NULL,
    cycle          integer     NOT NULL,
    calendar_id    text        NOT NULL REFERENCES case_calendars (id),
    started_at     timestamptz NOT NULL,
    target_seconds integer     NOT NULL,
    used_seconds   double precision NOT NULL DEFAULT 0,
    running_since  timestamptz,
    stopped_at     timestamptz,
    due_at         timestamptz,
    breached_at    timestamptz,
    PRIMARY KEY (case_id, metric, cycle)
);
-- The timer's question: which unbreached, unmet clocks are due by now.
CREATE INDEX case_sla_clocks_due ON case_sla_clocks (due_at)
    WHERE breached_at IS NULL AND stopped_at IS NULL AND due_at IS NOT NULL;

-- The durable record that makes a breach exactly once per case, metric and cycle.
CREATE TABLE case_sla_breaches (
    case_id     text        NOT NULL,
    metric      text        NOT NULL,
    cycle       integer     NOT NULL,
    due_at      timestamptz NOT NULL,
    detected_at timestamptz NOT NULL,
    event_id    text        NOT NULL UNIQUE,
    queue       text        NOT NULL,
    priority    text        NOT NULL,
    PRIMARY KEY (case_id, metric, cycle)
);

-- The local projection of crm.scores.v1 that sets a case's priority: the latest by event time.
CREATE TABLE case_contact_scores (
    contact_id text        PRIMARY KEY,
    value_tier text        NOT NULL,
    churn_band text        NOT NULL,
    score_time timestamptz NOT NULL,
    event_id   text        NOT NULL
);
