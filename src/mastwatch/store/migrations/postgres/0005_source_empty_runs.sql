-- mastwatch PostgreSQL schema, version 5.
-- A page source's selectors that found nothing, each with its run of polls (JSON
-- [[setting, polls], ...]): kept with the source so the run goes on whichever replica
-- polls next (and across restarts) toward the selector_empty notice.
ALTER TABLE sources ADD COLUMN empty_runs TEXT NOT NULL DEFAULT '[]';
