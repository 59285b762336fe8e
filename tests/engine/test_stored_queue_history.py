"""A queue journal written by squidmesh-es 0.1 (before indexed dispatch) still loads and runs.

`tests/fixtures/queue_history_0_1.db` was written by 0.1.0.dev0 (commit b0466d9): 120
`Sequential` runs started at 2026-01-01T00:00Z (run ids ...000 to ...119), 20 steps executed
by ``execute_next`` at T0+1s, then 10 attempts claimed by ``w-old`` at T0+2s with a 300 s
lease and never finished. The queue has 331 events and a snapshot at version 200 in the old
plain-dict form, whose attempts carry no scheduling order and no ``fresh`` flag.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from squidmesh_es import SquidMesh

from engine_workflows import Sequential

FIXTURE = Path(__file__).parents[1] / "fixtures" / "queue_history_0_1.db"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def open_copy(tmp_path: Path) -> SquidMesh:
    path = tmp_path / "journal.db"
    shutil.copy(FIXTURE, path)
    return SquidMesh.open(f"sqlite:///{path}", workflows=[Sequential])


def test_the_old_snapshot_and_the_replay_from_events_agree(tmp_path: Path) -> None:
    # 0.1 wrote snapshots to the library's stored_snapshots table, which loads no longer read
    # (see runtime/_sqlite.py); the stored form itself must still restore.
    with open_copy(tmp_path) as mesh:
        replayed = mesh.get_queue("default")
        with sqlite3.connect(tmp_path / "journal.db") as conn:
            row = conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM stored_snapshots"
            ).fetchone()
        stored = StoredEvent(UUID(row[0]), row[1], row[2], row[3])
        snapshot = mesh.mapper.to_domain_event(stored)
        from_snapshot = snapshot.mutate(None)
        for event in mesh.repository.event_store.get(snapshot.originator_id, gt=row[1]):
            from_snapshot = event.mutate(from_snapshot)

    assert (row[1], row[2]) == (200, "squidmesh.DispatchQueue.Snapshot")
    assert from_snapshot.version == replayed.version == 331
    assert from_snapshot.stored_state() == replayed.stored_state()
    assert len(from_snapshot) == 120
    at = T0 + timedelta(seconds=3)
    assert from_snapshot.claimable(at) == replayed.claimable(at)


def test_old_claims_keep_their_leases_and_expire_on_time(tmp_path: Path) -> None:
    with open_copy(tmp_path) as mesh:
        queue = mesh.get_queue("default")
        held = [a for a in queue.attempts.values() if a.status == "claimed"]
        visible_now = queue.claimable(T0 + timedelta(seconds=3))
        after_lease = queue.claimable(T0 + timedelta(seconds=303))

    assert len(held) == 10 and {a.owner_id for a in held} == {"w-old"}
    assert not {a.runnable_key for a in held} & {a.runnable_key for a in visible_now}
    assert len(visible_now) == 110
    assert {a.runnable_key for a in held} <= {a.runnable_key for a in after_lease[:10]}


def test_every_run_of_the_old_journal_completes(tmp_path: Path) -> None:
    with open_copy(tmp_path) as mesh:
        executed = mesh.drain(now=T0 + timedelta(seconds=400))
        queue = mesh.get_queue("default")
        statuses = {
            mesh.inspect_run(f"00000000-0000-4000-8000-{n:012d}").status for n in range(120)
        }

    assert executed == 360 - 20  # three steps a run, 20 done before the upgrade
    assert statuses == {"completed"}
    assert len(queue) == 0 and queue.counters["runs_closed"] == 120
