-- Follower bookkeeping (SQLite): how many events each projection applied and why it
-- stopped, if it did. Updated in the same transaction as the projection's rows; the
-- position itself is in the library's tracking table, keyed by projection name.
CREATE TABLE IF NOT EXISTS squidmesh_projection_state (
    projection TEXT NOT NULL PRIMARY KEY,
    events_applied INTEGER NOT NULL,
    error_code TEXT,
    error_message TEXT,
    error_position INTEGER,
    failed_at TEXT
);
