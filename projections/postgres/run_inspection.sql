-- Run inspection (Postgres): the latest snapshot document of each run (see
-- schemas/run_inspection.json), as of the last journal event the follower applied.
CREATE TABLE IF NOT EXISTS squidmesh_run_inspection (
    run_id uuid NOT NULL PRIMARY KEY,
    document jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    run_version integer NOT NULL,
    queue_version integer
);
