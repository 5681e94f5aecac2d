-- mastwatch SQLite schema, version 6. Digests, silences and operator notices (issue 5).
-- Digests and notices are pre-rendered messages with their own outbox table, `messages`,
-- which has the same life cycle as `deliveries` (pending → sent | failed, leased claims,
-- due_at for retries) but no link to an alert: a digest covers many alerts, a notice none.

CREATE TABLE silences (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,       -- JSON array of [key, value] pairs, all must hold
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,       -- expiring a silence sets this to the time of expiry
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE INDEX silences_ends_at ON silences (ends_at);

-- One row per (digest, period) ever sent: the UNIQUE constraint is what makes a digest go
-- out once per period however many replicas or restarts try.
CREATE TABLE digest_claims (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    digest_id    TEXT NOT NULL,
    period_start TEXT NOT NULL,
    period_end   TEXT NOT NULL,
    claimed_at   TEXT NOT NULL,
    entries      INTEGER NOT NULL CHECK (entries >= 0),
    UNIQUE (digest_id, period_start)
);

CREATE TABLE digest_entries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    digest_id TEXT NOT NULL,
    alert_id  TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    story_id  TEXT,
    queued_at TEXT NOT NULL,
    claim_id  INTEGER REFERENCES digest_claims (id),  -- NULL until a digest took it
    UNIQUE (digest_id, alert_id)
);

CREATE INDEX digest_entries_waiting ON digest_entries (digest_id, queued_at)
    WHERE claim_id IS NULL;

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('digest', 'notice')),
    ref         TEXT NOT NULL,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at      TEXT NOT NULL,
    lease_until TEXT,
    lease_owner TEXT,                -- the replica holding the lease
    last_error  TEXT,
    detail      TEXT,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    failed_at   TEXT,
    UNIQUE (ref, channel, target)
);

CREATE INDEX messages_pending_due ON messages (due_at, id) WHERE state = 'pending';

-- Operator notices currently raised, by key ("source_failing:<source id>" …): raising an
-- active key or clearing an inactive one changes nothing, so replicas and restarts do not
-- repeat a notice.
CREATE TABLE notices (
    key        TEXT PRIMARY KEY,
    active     INTEGER NOT NULL CHECK (active IN (0, 1)),
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    updated_at TEXT NOT NULL
);
