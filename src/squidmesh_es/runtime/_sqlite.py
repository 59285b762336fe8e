"""The library's SQLite persistence, with a snapshot table that large snapshots do not slow.

eventsourcing keeps snapshots in a ``WITHOUT ROWID`` table, whose rows live inside its
primary-key B-tree; SQLite advises keeping such rows small. A queue's snapshot holds every
live attempt (40 MB with 100,000 runs queued), and once one was stored, looking up any
other aggregate's snapshot (every load of a run that is not cached) read through it: 3 to
95 ms instead of 0.01 ms, which made every step cost O(backlog). Here snapshots live in an
ordinary table, ``squidmesh_snapshots``, whose key index holds only ids and versions.

Snapshots are disposable: those an earlier version wrote to ``stored_snapshots`` are not
read, and the first load of each aggregate replays its events once.

Selected with ``PERSISTENCE_MODULE=squidmesh_es.runtime._sqlite:SQLiteFactory``.
"""

from __future__ import annotations

from eventsourcing import sqlite
from eventsourcing.persistence import AggregateRecorder

__all__ = ["SNAPSHOT_TABLE", "SQLiteFactory"]

SNAPSHOT_TABLE = "squidmesh_snapshots"


class _SnapshotRecorder(sqlite.SQLiteAggregateRecorder):
    """The library's recorder over a rowid table with a unique key index."""

    def construct_create_table_statements(self) -> list[str]:
        """The table, and the index that keys it (the library's form is ``WITHOUT ROWID``)."""
        table = self.events_table_name
        return [
            f"CREATE TABLE IF NOT EXISTS {table} (originator_id TEXT, "
            "originator_version INTEGER, topic TEXT, state BLOB)",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_key "
            f"ON {table} (originator_id, originator_version)",
        ]


class SQLiteFactory(sqlite.SQLiteFactory):
    """The library's SQLite factory, with snapshots in `SNAPSHOT_TABLE`."""

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """The snapshot store in its own rowid table; any other store as the library makes it."""
        if purpose != "snapshots":
            return super().aggregate_recorder(purpose)
        recorder = _SnapshotRecorder(datastore=self.datastore, events_table_name=SNAPSHOT_TABLE)
        if self.env_create_table():
            recorder.create_table()
        return recorder
