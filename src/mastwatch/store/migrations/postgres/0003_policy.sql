-- mastwatch PostgreSQL schema, version 3: the alert policy (issue 5), as SQLite's 0005.
-- Stories, message kinds in the outbox, alert dispositions. Replicas share these rows, so
-- a story opened by one replica is threaded and escalated by the others.

-- signature: JSON array of 64 MinHash values (< 2^61); reports: JSON array of
-- [source_id, source_name, first_seen_at] in order (TEXT like alerts.matched: the store
-- merges reports in a locked read-modify-write, see postgres.save_story).
CREATE TABLE stories (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    link          TEXT,
    link_key      TEXT,
    signature     TEXT NOT NULL,
    tier          TEXT NOT NULL,
    reports       TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    escalation    TEXT
);

CREATE INDEX stories_last_seen ON stories (last_seen_at);

-- What became of each alert: sent, threaded, digest, silenced:<id>, inhibited, throttled,
-- flooded, unrouted; and its story. Rows from before this migration were all sent.
ALTER TABLE alerts ADD COLUMN story_id TEXT;
ALTER TABLE alerts ADD COLUMN disposition TEXT NOT NULL DEFAULT 'sent';

CREATE INDEX alerts_story_rule ON alerts (story_id, rule_id, created_at);
CREATE INDEX alerts_rule_created ON alerts (rule_id, created_at);

-- deliveries gains the message kind, the story, JSON extras for the renderer and a group
-- key (flood summaries); one alert may send several kinds to one receiver, so the
-- uniqueness includes the kind (PostgreSQL changes the constraint in place).
ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert'
    CHECK (kind IN ('alert', 'parent', 'reply', 'update', 'escalation', 'summary'));
ALTER TABLE deliveries ADD COLUMN story_id TEXT;
ALTER TABLE deliveries ADD COLUMN info TEXT NOT NULL DEFAULT '{}';
ALTER TABLE deliveries ADD COLUMN group_key TEXT;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_alert_id_channel_target_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_alert_receiver_kind
    UNIQUE (alert_id, channel, target, kind);

CREATE INDEX deliveries_story ON deliveries (story_id, channel, target, kind)
    WHERE story_id IS NOT NULL;
CREATE INDEX deliveries_group ON deliveries (group_key, channel, target)
    WHERE group_key IS NOT NULL;
