-- mastwatch PostgreSQL schema, version 2: coordination of replicas (HA mode).
-- A source is polled only by the replica holding its lease; a delivery lease names its
-- holder; every replica heartbeats into `replicas` so `mastwatch status` can show them.
ALTER TABLE sources ADD COLUMN lease_owner TEXT;
ALTER TABLE sources ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;

CREATE TABLE replicas (
    replica_id  TEXT PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    info        TEXT NOT NULL DEFAULT '{}'   -- JSON object: host, pid, version
);
