-- mastwatch SQLite schema, version 5. Alert policy (issue 5): stories, message kinds in the outbox, alert dispositions.

-- A story: items about one piece of news (same normalised link or similar title).
-- signature: JSON array of 64 MinHash values (< 2^61); reports: JSON array of
-- [source_id, source_name, first_seen_at] in order.
CREATE TABLE stories (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    link          TEXT,
    link_key      TEXT,
    signature     TEXT NOT NULL,
    tier          TEXT NOT NULL,
    reports       TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    escalation    TEXT
);

CREATE INDEX stories_last_seen ON stories (last_seen_at);

-- What became of each alert: sent, threaded, digest, silenced:<id>, inhibited, throttled,
-- flooded, unrouted; and its story. Rows from before this migration were all sent.
ALTER TABLE alerts ADD COLUMN story_id TEXT;
ALTER TABLE alerts ADD COLUMN disposition TEXT NOT NULL DEFAULT 'sent';

CREATE INDEX alerts_story_rule ON alerts (story_id, rule_id, created_at);
CREATE INDEX alerts_rule_created ON alerts (rule_id, created_at);

-- deliveries gains the message kind (alert, parent, reply, update, escalation, summary),
-- the story, JSON extras for the renderer, and a group key (flood summaries). One alert
-- may now send several kinds to one receiver, so the uniqueness includes the kind: the
-- table is rebuilt (SQLite cannot change a table constraint in place).
CREATE TABLE deliveries_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'alert'
                CHECK (kind IN ('alert', 'parent', 'reply', 'update', 'escalation', 'summary')),
    story_id    TEXT,
    info        TEXT NOT NULL DEFAULT '{}',
    group_key   TEXT,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at      TEXT NOT NULL,
    lease_until TEXT,
    lease_owner TEXT,                       -- the replica holding the lease (0004)
    last_error  TEXT,
    detail      TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    failed_at   TEXT,
    UNIQUE (alert_id, channel, target, kind)
);

INSERT INTO deliveries_new (id, alert_id, channel, target, state, attempts, due_at,
    lease_until, lease_owner, last_error, detail, created_at, sent_at, failed_at)
SELECT id, alert_id, channel, target, state, attempts, due_at, lease_until, lease_owner,
    last_error, detail, created_at, sent_at, failed_at FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX deliveries_pending_due ON deliveries (due_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_story ON deliveries (story_id, channel, target, kind)
    WHERE story_id IS NOT NULL;
CREATE INDEX deliveries_group ON deliveries (group_key, channel, target)
    WHERE group_key IS NOT NULL;
