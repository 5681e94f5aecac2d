-- mastwatch SQLite schema, version 7.
-- A page source's selectors that found nothing, each with its run of polls (JSON
-- [[setting, polls], ...]): kept with the source so a restart goes on counting toward the
-- selector_empty notice instead of starting over.
ALTER TABLE sources ADD COLUMN empty_runs TEXT NOT NULL DEFAULT '[]';
