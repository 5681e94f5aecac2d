-- mastwatch SQLite schema, version 4: the coordination tables PostgreSQL's HA mode uses,
-- kept here too so both backends pass one contract (several processes may share a file).
ALTER TABLE sources ADD COLUMN lease_owner TEXT;
ALTER TABLE sources ADD COLUMN lease_until TEXT;
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;

CREATE TABLE replicas (
    replica_id  TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    info        TEXT NOT NULL DEFAULT '{}'   -- JSON object: host, pid, version
);
