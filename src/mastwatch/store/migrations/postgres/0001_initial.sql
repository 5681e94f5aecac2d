-- mastwatch PostgreSQL schema, version 1: SQLite's 0001-0003 together, times as TIMESTAMPTZ.
-- Applied by mastwatch.store.postgres inside one transaction under an advisory lock,
-- so replicas starting together apply it once: no BEGIN/COMMIT here.

CREATE TABLE sources (
    source_id       TEXT PRIMARY KEY,
    etag            TEXT,            -- verbatim, weak validators included (W/"...")
    last_modified   TEXT,            -- verbatim HTTP date string, never re-formatted
    body_hash       TEXT,
    next_check_at   TIMESTAMPTZ,
    error_count     INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    last_success_at TIMESTAMPTZ,
    last_error_at   TIMESTAMPTZ,
    last_error      TEXT,
    baseline_done   BOOLEAN NOT NULL DEFAULT FALSE,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE items (
    source_id     TEXT NOT NULL REFERENCES sources (source_id) ON DELETE CASCADE,
    item_key      TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    title         TEXT NOT NULL,
    link          TEXT,
    guid          TEXT,
    published     TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ NOT NULL,
    summary       TEXT NOT NULL DEFAULT '',
    content       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (source_id, item_key)
);

CREATE INDEX items_first_seen_at ON items (first_seen_at);
CREATE INDEX items_content_hash ON items (source_id, content_hash);

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
    matched     TEXT NOT NULL,       -- JSON array of the terms that fired (as SQLite keeps it)
    published   TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (source_id, item_key) REFERENCES items (source_id, item_key) ON DELETE CASCADE
);

CREATE INDEX alerts_created_at ON alerts (created_at);
CREATE INDEX alerts_item ON alerts (source_id, item_key);

CREATE TABLE deliveries (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at      TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ,
    last_error  TEXT,
    detail      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    failed_at   TIMESTAMPTZ,
    UNIQUE (alert_id, channel, target)
);

CREATE INDEX deliveries_pending_due ON deliveries (due_at, id) WHERE state = 'pending';
