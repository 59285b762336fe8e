"""What a journal really holds: its stored rows read with the database's own driver."""

from __future__ import annotations

import sqlite3

from squidmesh_es import SquidMesh


def raw_states(mesh: SquidMesh) -> list[bytes]:
    """The stored state of every event and snapshot of ``mesh``'s journal, as written.

    SQLite and Postgres are read with their own drivers, around the library; the memory
    journal has no other reader than its recorder.
    """
    storage = mesh.storage
    assert storage is not None
    if storage.backend == "sqlite":
        with sqlite3.connect(storage.env["SQLITE_DBNAME"]) as conn:
            rows = conn.execute(
                "SELECT state FROM stored_events UNION ALL SELECT state FROM squidmesh_snapshots"
            ).fetchall()
        return [bytes(row[0]) for row in rows]
    if storage.backend == "postgres":
        import psycopg

        env = storage.env
        schema = storage.postgres_schema or "public"
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
        ) as conn:
            rows = conn.execute(
                f'SELECT state FROM "{schema}".squidmesh_events '  # noqa: S608 - test schema
                f'UNION ALL SELECT state FROM "{schema}".squidmesh_snapshots'
            ).fetchall()
        return [bytes(row[0]) for row in rows]
    return [n.state for n in mesh.recorder.select_notifications(start=None, limit=1_000_000)]
