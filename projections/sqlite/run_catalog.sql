-- Run catalog (SQLite): one row per run, its state as of the last journal event the
-- catalog follower applied. Times are ISO-8601 UTC text with microseconds, so text order
-- is time order; JSON columns hold JSON text.
CREATE TABLE IF NOT EXISTS squidmesh_run_catalog (
    run_id TEXT NOT NULL PRIMARY KEY,
    workflow TEXT NOT NULL,
    trigger TEXT,
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    terminal_status TEXT,
    definition_version TEXT,
    definition_fingerprint TEXT,
    parent_run_id TEXT,
    replayed_from_run_id TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    ended_at TEXT,
    deadline TEXT,
    anomalies TEXT NOT NULL,
    anomaly_count INTEGER NOT NULL,
    run_version INTEGER NOT NULL,
    queue_version INTEGER
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
