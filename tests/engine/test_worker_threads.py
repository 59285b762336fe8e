"""Worker threads and heartbeats, in real time where time is the subject."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import SystemClock
from squidmesh_es.runtime._execution import claim_attempts, run_claimed

from conftest import OpenMesh
from engine_workflows import CALLS, Quick, SlowOne


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def wait_until_terminal(mesh: SquidMesh, run_ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(mesh.get_run(r).is_terminal for r in run_ids):
            return
        time.sleep(0.02)
    raise AssertionError("runs did not finish in time")


def test_worker_threads_run_every_step_once(mesh: SquidMesh) -> None:
    run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(20)]

    with mesh.worker(concurrency=4, owner_id="pool") as worker:
        wait_until_terminal(mesh, run_ids)

    assert all(mesh.get_run(r).terminal_status == "completed" for r in run_ids)
    counts = Counter(key for _, key in CALLS)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert worker.stats.executed == 60
    assert worker.stats.commits < 60 * 2  # batching: fewer commits than claim + completion


def test_stop_finishes_the_step_in_hand_and_claims_no_more(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(clock=SystemClock())
    slow = mesh.start(SlowOne, {"seconds": 0.5}).run_id
    worker = mesh.worker(concurrency=1).start()
    deadline = time.monotonic() + 10
    while not CALLS and time.monotonic() < deadline:
        time.sleep(0.01)

    worker.stop()

    run = mesh.get_run(slow)
    assert [p["step"] for p in run.applied.values()] == ["slow"]
    assert not worker.running
    assert [name for name, _ in CALLS] == ["Slow"]  # the successor was not claimed


def test_worker_refuses_bad_settings(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument):
        mesh.worker(concurrency=0)
    with pytest.raises(InvalidArgument):
        mesh.worker(queues=[])
    with pytest.raises(InvalidArgument):
        mesh.worker(heartbeat_interval=timedelta(milliseconds=1))


def test_heartbeats_keep_a_long_step_leased(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 1.0}).run_id

    snap = mesh.execute_next(
        owner_id="w",
        lease_for=timedelta(milliseconds=400),
        heartbeat_interval=timedelta(milliseconds=100),
    )

    assert snap is not None
    assert "slow" in [a["step"] for a in mesh.get_run(run_id).applied.values()]


def test_without_heartbeats_the_lease_expires_and_the_completion_is_refused(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 0.6}).run_id

    mesh.execute_next(owner_id="w", lease_for=timedelta(milliseconds=200))

    assert mesh.get_run(run_id).applied == {}
    [attempt] = mesh.get_queue().attempts_of(run_id)
    assert attempt.status.value == "claimed"  # expired: claimable again


def test_a_stale_heartbeat_stops_and_the_completion_is_refused(
    open_mesh: OpenMesh, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 0.5}).run_id
    lease = timedelta(seconds=5)
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=lease, now=mesh.now()
    )
    mesh.cancel(run_id)

    with caplog.at_level(logging.WARNING):
        finished = run_claimed(
            mesh, claim, heartbeat_interval=timedelta(milliseconds=100), lease_for=lease
        )
    [snap] = mesh.settle([finished], queue="default")

    assert "heartbeat stopped" in caplog.text
    assert snap.terminal_status == "cancelled"
    assert mesh.get_run(run_id).applied == {}
