-- Run catalog (Postgres): one row per run, its state as of the last journal event the
-- catalog follower applied. Created in the journal's schema (the URL's ?schema=).
CREATE TABLE IF NOT EXISTS squidmesh_run_catalog (
    run_id uuid NOT NULL PRIMARY KEY,
    workflow text NOT NULL,
    trigger text,
    queue text NOT NULL,
    status text NOT NULL,
    terminal boolean NOT NULL,
    terminal_status text,
    definition_version text,
    definition_fingerprint text,
    parent_run_id uuid,
    replayed_from_run_id uuid,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    ended_at timestamptz,
    deadline jsonb,
    anomalies jsonb NOT NULL,
    anomaly_count integer NOT NULL,
    run_version integer NOT NULL,
    queue_version integer
);
CREATE INDEX IF NOT EXISTS squidmesh_run_catalog_newest
    ON squidmesh_run_catalog (started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS squidmesh_run_catalog_workflow
    ON squidmesh_run_catalog (workflow, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS squidmesh_run_catalog_status
    ON squidmesh_run_catalog (status, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS squidmesh_run_catalog_queue
    ON squidmesh_run_catalog (queue, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS squidmesh_run_catalog_parent
    ON squidmesh_run_catalog (parent_run_id, started_at DESC, run_id DESC);
