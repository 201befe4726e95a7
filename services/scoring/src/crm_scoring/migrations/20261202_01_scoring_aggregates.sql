-- Running aggregates per contact (see aggregates.py): what scoring folded of the contact's
-- facts up to `as_of`, so that scoring one more event reads the few facts that crossed a
-- window edge since, not the whole history. Null: not built yet (rebuilt from the facts).
ALTER TABLE scoring_contacts ADD COLUMN aggregates jsonb;

-- The facts of a contact within a range of event times (the window edges, late arrivals).
CREATE INDEX scoring_facts_contact_time ON scoring_facts (contact_id, occurred_at);
DROP INDEX scoring_facts_contact;
