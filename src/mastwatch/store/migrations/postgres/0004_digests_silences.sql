-- mastwatch PostgreSQL schema, version 4: digests, silences, operator notices and the
-- messages outbox (issue 5), as SQLite's 0006. Every replica reads and writes these rows:
-- a silence added anywhere holds everywhere, a digest period is claimed once (UNIQUE), a
-- notice changes state once (row lock), and a message is leased like a delivery.

CREATE TABLE silences (
    id          TEXT PRIMARY KEY,
    matchers    TEXT NOT NULL,       -- JSON array of [key, value] pairs, all must hold
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL, -- expiring a silence sets this to the time of expiry
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX silences_ends_at ON silences (ends_at);

-- One row per (digest, period) ever sent: the UNIQUE constraint is what makes a digest go
-- out once per period however many replicas or restarts try.
CREATE TABLE digest_claims (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest_id    TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end   TIMESTAMPTZ NOT NULL,
    claimed_at   TIMESTAMPTZ NOT NULL,
    entries      INTEGER NOT NULL CHECK (entries >= 0),
    UNIQUE (digest_id, period_start)
);

CREATE TABLE digest_entries (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest_id TEXT NOT NULL,
    alert_id  TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    story_id  TEXT,
    queued_at TIMESTAMPTZ NOT NULL,
    claim_id  BIGINT REFERENCES digest_claims (id),  -- NULL until a digest took it
    UNIQUE (digest_id, alert_id)
);

CREATE INDEX digest_entries_waiting ON digest_entries (digest_id, queued_at)
    WHERE claim_id IS NULL;

CREATE TABLE messages (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('digest', 'notice')),
    ref         TEXT NOT NULL,
    channel     TEXT NOT NULL,
    target      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body_text   TEXT NOT NULL,
    body_html   TEXT,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at      TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ,
    lease_owner TEXT,                -- the replica holding the lease
    last_error  TEXT,
    detail      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    failed_at   TIMESTAMPTZ,
    UNIQUE (ref, channel, target)
);

CREATE INDEX messages_pending_due ON messages (due_at, id) WHERE state = 'pending';

-- Operator notices currently raised, by key ("source_failing:<source id>" …): raising an
-- active key or clearing an inactive one changes nothing, so replicas and restarts do not
-- repeat a notice.
CREATE TABLE notices (
    key        TEXT PRIMARY KEY,
    active     BOOLEAN NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    raised_at  TIMESTAMPTZ NOT NULL,
    cleared_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
