-- Run index (Postgres): lookup keys of each run (workflow, trigger, idempotency and schedule
-- keys, parent run, declared payload keys). One row per (key, value, run).
CREATE TABLE IF NOT EXISTS squidmesh_run_index (
    key text NOT NULL,
    value text NOT NULL,
    run_id uuid NOT NULL,
    started_at timestamptz NOT NULL,
    PRIMARY KEY (key, value, run_id)
);
CREATE INDEX IF NOT EXISTS squidmesh_run_index_newest
    ON squidmesh_run_index (key, value, started_at DESC, run_id DESC);
