"""On SQLite, snapshots live in a rowid table: a large one never sits in a key B-tree."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from squidmesh_es import SquidMesh
from squidmesh_es.domain import queue_id

from engine_workflows import Quick


def test_queue_snapshots_go_to_a_rowid_table_keyed_by_a_separate_index(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with SquidMesh.open(f"sqlite:///{path}", workflows=[Quick]) as mesh:
        mesh.start_many(Quick, [{"order_id": f"o{n}"} for n in range(150)])  # 301 events
        assert mesh.queue_snapshots.wait(10)
        assert mesh.snapshots is not None
        assert list(mesh.snapshots.get(queue_id("default")))

    with sqlite3.connect(path) as conn:
        tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        indexes = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")]
        stored = conn.execute("SELECT count(*) FROM squidmesh_snapshots").fetchone()[0]
    assert "WITHOUT ROWID" not in tables["squidmesh_snapshots"]
    assert "squidmesh_snapshots_key" in indexes
    assert stored >= 1
