-- Run inspection (SQLite): the latest snapshot document of each run (JSON text, see
-- schemas/run_inspection.json), as of the last journal event the follower applied.
CREATE TABLE IF NOT EXISTS squidmesh_run_inspection (
    run_id TEXT NOT NULL PRIMARY KEY,
    document TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    run_version INTEGER NOT NULL,
    queue_version INTEGER
);
