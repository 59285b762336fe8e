-- Follower bookkeeping (Postgres): how many events each projection applied and why it
-- stopped, if it did. Updated in the same transaction as the projection's rows; the
-- position itself is in the library's tracking table, keyed by projection name.
CREATE TABLE IF NOT EXISTS squidmesh_projection_state (
    projection text NOT NULL PRIMARY KEY,
    events_applied bigint NOT NULL,
    error_code text,
    error_message text,
    error_position bigint,
    failed_at timestamptz
);
