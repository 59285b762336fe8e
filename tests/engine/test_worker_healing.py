"""Workers that heal: short leases kept alive by heartbeats, presence, and releasing the dead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.domain import REGISTRY_ID
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import DEFAULT_LEASE, SystemClock
from squidmesh_es.runtime._execution import claim_attempts, run_claimed
from squidmesh_es.runtime._presence import SILENT_AFTER, record_presence
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh
from engine_workflows import CALLS, Quick, SlowOne

HERE = Path(__file__).parent


def worker_env(call_log: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["SQUIDMESH_TEST_CALL_LOG"] = str(call_log)
    env.update(extra)
    return env


def applied_counts(mesh: SquidMesh, run_id: str) -> Counter[str]:
    return Counter(
        e.runnable_key  # type: ignore[attr-defined]
        for e in mesh.events.get(UUID(run_id))
        if type(e).__name__ == "RunnableApplied"
    )


def wait_until(condition: object, seconds: float = 30) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def register_dead_worker(mesh: SquidMesh, owner_id: str) -> None:
    """What a worker killed with SIGKILL leaves in the registry: a start, nothing after."""
    record_presence(
        mesh, owner_id, "started", queues=["default"], host="h", pid=1, lease_for=DEFAULT_LEASE
    )


def test_a_worker_leases_for_30_seconds_and_beats_every_third_by_default(
    mesh: SquidMesh,
) -> None:
    worker = mesh.worker()

    assert worker.lease_for == DEFAULT_LEASE == timedelta(seconds=30)
    assert worker.heartbeat_interval == timedelta(seconds=10)


def test_automatic_heartbeats_keep_a_step_longer_than_its_lease(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 1.2}).run_id
    CALLS.clear()

    with mesh.worker(owner_id="w", lease_for=timedelta(milliseconds=400)):
        wait_until(lambda: mesh.get_run(run_id).is_terminal)

    assert mesh.get_run(run_id).terminal_status == "completed"
    assert [name for name, _ in CALLS].count("Slow") == 1  # its lease never ran out
    assert set(applied_counts(mesh, str(run_id)).values()) == {1}


def test_a_running_worker_is_listed_live_and_leaves_the_list_when_it_stops(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(clock=SystemClock())

    with mesh.worker(owner_id="w-live", queues=["default", "other"]):
        wait_until(lambda: [w.owner_id for w in mesh.list_workers()] == ["w-live"])
        [live] = mesh.list_workers()
    gone = mesh.list_workers(include_gone=True)

    assert (live.status, live.queues, live.pid) == ("live", ["default", "other"], os.getpid())
    assert mesh.list_workers() == []
    assert [(w.owner_id, w.status) for w in gone] == [("w-live", "stopped")]


def test_a_worker_not_seen_for_three_presence_intervals_is_silent(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    register_dead_worker(mesh, "w-dead")

    clock.advance(SILENT_AFTER - timedelta(seconds=1))
    still = mesh.list_workers()
    clock.advance(timedelta(seconds=1))
    [silent] = mesh.list_workers()

    assert [w.status for w in still] == ["live"]
    assert silent.status == "silent"


def test_releasing_a_dead_worker_redelivers_its_steps_at_once(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    register_dead_worker(mesh, "w-dead")
    [claim] = claim_attempts(
        mesh, "default", owner_id="w-dead", limit=1, lease_for=DEFAULT_LEASE, now=clock.now()
    )
    assert mesh.list_workers()[0].claims == 1
    assert mesh.execute_next(owner_id="heir") is None  # leased for 30 s more

    report = mesh.release_worker("w-dead", actor="ops")

    assert report.released == {"default": [claim.key]} and report.count == 1
    assert mesh.execute_next(owner_id="heir") is not None  # at once, not in 30 s
    late = run_claimed(mesh, claim)
    [snap] = mesh.settle([late], queue="default")  # the dead worker's late outcome
    assert [a.step for a in snap.applied_runnables] == ["reserve"]
    assert mesh.list_workers() == []
    [released] = mesh.list_workers(include_gone=True)
    assert (released.status, released.released_by) == ("released", "ops")
    assert mesh.get_run(run_id).applied[claim.key]["claim"]["owner_id"] == "heir"


def test_releasing_twice_releases_nothing_more_and_unknown_owners_need_queues(
    mesh: SquidMesh,
) -> None:
    register_dead_worker(mesh, "w-dead")
    mesh.release_worker("w-dead")

    assert mesh.release_worker("w-dead").count == 0
    with pytest.raises(InvalidArgument):
        mesh.release_worker("nobody")
    assert mesh.release_worker("nobody", queues=["default"]).count == 0


@pytest.mark.shared_journal
def test_a_killed_worker_process_is_listed_and_released_from_the_command_line(
    open_mesh: OpenMesh, database_url: str, tmp_path: Path
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 0.0}).run_id
    calls = tmp_path / "calls.log"
    doomed = subprocess.Popen(
        [
            sys.executable, "-m", "squidmesh_es.cli", "worker", "--database-url", database_url,
            "--import", "engine_workflows", "--owner-id", "doomed",
        ],
        env=worker_env(calls, SQUIDMESH_TEST_SLOW_SECONDS="60"),
    )  # fmt: skip
    try:
        wait_until(lambda: calls.exists() and calls.read_text())
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        doomed.kill()
    cli = CliRunner()

    listed = cli.invoke(main, ["workers", "list", "--database-url", database_url])
    released = cli.invoke(
        main, ["workers", "release", "doomed", "--database-url", database_url, "--actor", "ops"]
    )
    with mesh.worker(owner_id="heir"):
        wait_until(lambda: mesh.get_run(run_id).is_terminal, seconds=10)  # not 30 s of lease

    assert listed.exit_code == 0 and "doomed" in listed.output and " 1 " in listed.output
    assert released.exit_code == 0, released.output
    assert released.output.splitlines()[0] == "released 1 claims of doomed"
    assert mesh.get_run(run_id).terminal_status == "completed"


def test_the_registry_is_snapshotted_so_a_new_process_reads_little(
    open_mesh: OpenMesh, backend: str
) -> None:
    mesh = open_mesh()
    register_dead_worker(mesh, "w1")
    for _ in range(150):
        record_presence(mesh, "w1", "seen")

    reopened = open_mesh()

    assert [w.owner_id for w in reopened.list_workers()] == ["w1"]
    if mesh.snapshots is not None:
        assert list(mesh.snapshots.get(REGISTRY_ID))  # a checkpoint was written
