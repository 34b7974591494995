-- trainwire job store, PostgreSQL schema 2: each job's kind (what it runs; every earlier job
-- trained a model) and a summary (last seq, start time) so finished jobs are listed and shown
-- without reading their events. started_at is NULL until the store fills it in from the events
-- (it is inside the protobuf event blobs); new jobs start at 0.
ALTER TABLE jobs ADD COLUMN kind text NOT NULL DEFAULT 'train';
ALTER TABLE jobs ADD COLUMN last_seq integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN started_at double precision;
UPDATE jobs SET last_seq = coalesce((SELECT max(seq) FROM events WHERE events.job_id = jobs.job_id), 0);
CREATE INDEX jobs_newest ON jobs (created_at DESC, job_id DESC);
CREATE INDEX jobs_state_newest ON jobs (state, created_at DESC, job_id DESC);
CREATE INDEX jobs_started_unknown ON jobs (job_id) WHERE started_at IS NULL;
