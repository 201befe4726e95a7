-- Subjects: the contact ids a service keeps data about, and what contacts said of them
-- (DESIGN.md, patterns 5 and 6). A merged id points at its survivor, one step (a second
-- merge re-points what pointed at the merged id), so that a late event for a merged id counts
-- for the survivor; an erased id (opaque) is kept so that a late or replayed event for it is
-- dropped.
CREATE TABLE kit_merged_subjects (
    merged_id   text        PRIMARY KEY,
    survivor_id text        NOT NULL,
    merged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kit_merged_subjects_survivor ON kit_merged_subjects (survivor_id);

CREATE TABLE kit_erased_subjects (
    subject_id text        PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);
