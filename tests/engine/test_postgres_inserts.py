"""Events and snapshots reach Postgres as four binary arrays: the rows are the library's."""

from __future__ import annotations

from uuid import UUID

import psycopg
import pytest

from squidmesh_es import SquidMesh

from conftest import POSTGRES_BASE_URL
from engine_workflows import Quick

pytestmark = pytest.mark.postgres_only


def _schema(database_url: str) -> str:
    return database_url.split("schema=", 1)[1].split("&", 1)[0]


def test_events_and_snapshots_are_rows_the_library_reads_back(
    database_url: str, backend: str
) -> None:
    with SquidMesh.open(database_url, workflows=[Quick]) as mesh:
        run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
        assert mesh.drain() == 3
        mesh.take_snapshot(UUID(str(run_id)))
        ids = [n.id for n in mesh.recorder.select_notifications(start=1, limit=100)]

    with psycopg.connect(POSTGRES_BASE_URL.split("?")[0]) as conn:
        rows = conn.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{_schema(database_url)}"'
            ".squidmesh_events WHERE originator_id = %s ORDER BY originator_version",
            (UUID(str(run_id)),),
        ).fetchall()
        [snapshot] = conn.execute(
            f'SELECT originator_version, topic FROM "{_schema(database_url)}".squidmesh_snapshots'
            " WHERE originator_id = %s",
            (UUID(str(run_id)),),
        ).fetchall()

    assert ids == list(range(1, len(ids) + 1))  # notification ids came back in order
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0][2] == "squidmesh.WorkflowRun.RunStarted" and rows[0][3].startswith(b"{")
    assert snapshot == (len(rows), "squidmesh.WorkflowRun.Snapshot")
