-- Version 2: keep each item's summary and content, so `mastwatch replay` can run a rule set
-- over what the daemon already saw. Items recorded before this version replay by title
-- alone (their text was never stored).
ALTER TABLE items ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN content TEXT NOT NULL DEFAULT '';

-- replay and `alerts --since` select by time
CREATE INDEX items_first_seen_at ON items (first_seen_at);
