-- trainwire job store, PostgreSQL schema 1: jobs and their events.
-- Applied by services/orchestrator/store_postgres.py in one transaction, recorded in
-- schema_version. Requests and events are their protobuf encodings (bytea), as in SQLite.
CREATE TABLE jobs (
    job_id text PRIMARY KEY,
    request_id text NOT NULL DEFAULT '',
    request bytea NOT NULL,
    upload_token text NOT NULL,
    created_at double precision NOT NULL,
    state text NOT NULL,
    node text NOT NULL DEFAULT '',
    attempt integer NOT NULL DEFAULT 0,
    node_seq bigint NOT NULL DEFAULT 0,
    cancel_requested text NOT NULL DEFAULT '',
    inserted bigint GENERATED ALWAYS AS IDENTITY  -- insertion order: breaks created_at ties
);
CREATE UNIQUE INDEX jobs_request_id ON jobs (request_id) WHERE request_id <> '';
CREATE INDEX jobs_state ON jobs (state);
CREATE TABLE events (
    job_id text NOT NULL REFERENCES jobs (job_id),
    seq integer NOT NULL,
    event bytea NOT NULL,
    PRIMARY KEY (job_id, seq)
);
