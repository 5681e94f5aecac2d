-- mastwatch SQLite schema, version 1.
-- Times are ISO-8601 UTC text of one fixed width ("YYYY-MM-DDTHH:MM:SS.ffffffZ"),
-- so text comparison orders them exactly as time does.
-- Applied by mastwatch.store.sqlite inside one transaction: no BEGIN/COMMIT here.

CREATE TABLE sources (
    source_id       TEXT PRIMARY KEY,
    etag            TEXT,            -- verbatim, weak validators included (W/"...")
    last_modified   TEXT,            -- verbatim HTTP date string, never re-formatted
    body_hash       TEXT,
    next_check_at   TEXT,
    error_count     INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    last_success_at TEXT,
    last_error_at   TEXT,
    last_error      TEXT,
    baseline_done   INTEGER NOT NULL DEFAULT 0 CHECK (baseline_done IN (0, 1)),
    disabled        INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

CREATE TABLE items (
    source_id     TEXT NOT NULL REFERENCES sources (source_id) ON DELETE CASCADE,
    item_key      TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    title         TEXT NOT NULL,
    link          TEXT,
    guid          TEXT,
    published     TEXT,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (source_id, item_key)
);

CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    rule_id     TEXT NOT NULL,
    rule_title  TEXT NOT NULL,
    tier        TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    source_name TEXT NOT NULL,
    item_key    TEXT NOT NULL,
    title       TEXT NOT NULL,
    link        TEXT,
    summary     TEXT NOT NULL,
    matched     TEXT NOT NULL,       -- JSON array of the terms that fired
    published   TEXT,
    created_at  TEXT NOT NULL,
    FOREIGN KEY (source_id, item_key) REFERENCES items (source_id, item_key) ON DELETE CASCADE
);

CREATE INDEX alerts_created_at ON alerts (created_at);
CREATE INDEX alerts_item ON alerts (source_id, item_key);

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at      TEXT NOT NULL,
    lease_until TEXT,
    last_error  TEXT,
    detail      TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    failed_at   TEXT,
    UNIQUE (alert_id, channel, target)
);

-- The claim query reads only pending rows in due order; a partial index keeps it small
-- however many sent rows pile up.
CREATE INDEX deliveries_pending_due ON deliveries (due_at, id) WHERE state = 'pending';
