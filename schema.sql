-- moment-sync event log: the one schema. Applied on every start; idempotent.
-- The daemon records the version it applied in PRAGMA user_version (see daemon/store/schema.py);
-- a file whose user_version is newer than the running daemon's stops the start.

CREATE TABLE IF NOT EXISTS events (
    seq              INTEGER PRIMARY KEY,          -- gap-free, assigned by the single writer
    type             TEXT    NOT NULL,             -- the event's msgspec tag
    schema_version   INTEGER NOT NULL,
    entity_kind      TEXT    NOT NULL,
    entity_key       TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    occurred_at      TEXT    NOT NULL,             -- ISO 8601 UTC
    recorded_at      TEXT    NOT NULL,             -- ISO 8601 UTC
    payload          BLOB    NOT NULL              -- msgspec JSON, readable with sqlite3
);
CREATE INDEX IF NOT EXISTS events_by_entity ON events (entity_kind, entity_key, seq);

CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE is refused'); END;

-- Invoice PDFs, stored once, content-addressed by SHA-256.
CREATE TABLE IF NOT EXISTS blobs (
    sha256       TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    stored_at    TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'blobs are append-only: DELETE is refused'); END;

-- Projections (daemon/core/projections.py): one row per key, the row as msgspec JSON, and the
-- seq of the last event that changed it. Written in the transaction of the events they fold.
CREATE TABLE IF NOT EXISTS desired_customers (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS desired_projects  (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS desired_invoices  (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS desired_payments  (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS desired_expenses  (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entity_states     (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS daemon_state      (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, row BLOB NOT NULL);

-- The last event folded into the projections above.
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
INSERT OR IGNORE INTO checkpoints (name, seq) VALUES ('projections', 0);
