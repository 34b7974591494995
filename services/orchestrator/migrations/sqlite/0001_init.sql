-- trainwire job store, SQLite schema 1: jobs and their events (the schema of the first
-- release; IF NOT EXISTS because stores written before versioned migrations already have it).
-- Requests and events are their protobuf encodings.
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    request_id TEXT,
    request BLOB NOT NULL,
    upload_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL,
    node TEXT NOT NULL DEFAULT '',
    attempt INTEGER NOT NULL DEFAULT 0,
    node_seq INTEGER NOT NULL DEFAULT 0,
    cancel_requested TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    seq INTEGER NOT NULL,
    event BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
