-- Merges and erasures scoring remembers moved to the kit's tables (the kit's migrations run
-- first): a late event for a merged id still counts for its survivor, and one for an erased id
-- is still dropped.
INSERT INTO kit_merged_subjects (merged_id, survivor_id, merged_at)
SELECT merged_id, survivor_id, merged_at FROM scoring_aliases
ON CONFLICT DO NOTHING;
INSERT INTO kit_erased_subjects (subject_id, erased_at)
SELECT contact_id, erased_at FROM scoring_erased
ON CONFLICT DO NOTHING;
DROP TABLE scoring_aliases;
DROP TABLE scoring_erased;
