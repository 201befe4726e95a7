-- Assignment: queues that hand their cases to agents with room, round robin or least busy
-- (crm_cases.assignment). A case waits in its queue (assignee NULL) while nobody has room.

CREATE TABLE case_queues (
    name          text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    strategy      text        NOT NULL DEFAULT 'round_robin'
                              CHECK (strategy IN ('round_robin', 'least_busy')),
    last_agent_id text,       -- round robin: who got the queue's last case
    auto_assign   boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- An agent takes cases of its queues while available and below its capacity; its load is
-- its cases that are new, open or on hold (pending ones wait on the customer: not counted).
CREATE TABLE case_agents (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    capacity   integer     NOT NULL CHECK (capacity >= 0),
    available  boolean     NOT NULL DEFAULT true,
    queues     text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The agents of some queues (`queues && $1`).
CREATE INDEX case_agents_queues ON case_agents USING gin (queues);

-- The cases waiting in a queue, oldest first.
CREATE INDEX cases_waiting ON cases (queue, opened_at, id)
    WHERE assignee IS NULL AND status IN ('new', 'open', 'on_hold');
-- The load of some agents (one GROUP BY over their cases that count).
CREATE INDEX cases_load ON cases (assignee)
    WHERE assignee IS NOT NULL AND status IN ('new', 'open', 'on_hold');
