"""Worker threads and heartbeats, in real time where time is the subject."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import DispatchOrder
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


def test_the_in_flight_count_stays_exact_through_failed_commits(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(clock=SystemClock())  # lost steps come back when their lease expires
    run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(12)]
    real_save = mesh.save
    failures = {"left": 6}
    lost = {"left": 3}

    def flaky_save(*objs: object, **kwargs: object) -> object:
        if lost["left"] < 3 and failures["left"] > 0:  # fail the commits after a lost step
            failures["left"] -= 1
            raise ConnectionError("injected: database went away for a moment")
        return real_save(*objs, **kwargs)

    real_get_run = mesh.get_run

    def flaky_get_run(run_id: object, *, fresh: bool = True) -> object:
        if threading.current_thread().name.startswith("squidmesh-step") and lost["left"] > 0:
            lost["left"] -= 1  # the step cannot start: its lease expires, it is redelivered
            raise ConnectionError("injected: run could not be loaded")
        return real_get_run(run_id, fresh=fresh)  # type: ignore[arg-type]

    mesh.save = flaky_save  # type: ignore[method-assign]
    mesh.get_run = flaky_get_run  # type: ignore[method-assign]
    worker = mesh.worker(concurrency=3, owner_id="flaky", lease_for=timedelta(seconds=1)).start()
    peak = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(mesh.get_run(r).is_terminal for r in run_ids):
        peak = max(peak, worker._in_flight)
        assert 0 <= worker._in_flight <= 6  # short steps: claimed ahead, up to twice 3
        time.sleep(0.005)
    worker.stop()

    assert failures["left"] == 0 and lost["left"] == 0
    assert all(mesh.get_run(r).terminal_status == "completed" for r in run_ids)
    assert worker._in_flight == 0 and peak <= 6
    assert len(Counter(key for _, key in CALLS)) == 36


def test_a_backlog_does_not_hold_back_the_runs_under_way(mesh: SquidMesh) -> None:
    run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(30)]

    for _ in range(3):
        mesh.execute_next(owner_id="w")

    assert mesh.get_run(run_ids[0]).terminal_status == "completed"
    assert not any(mesh.get_run(r).is_terminal for r in run_ids[1:])


def test_fifo_dispatch_takes_every_first_step_before_any_second(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(dispatch_order=DispatchOrder.FIFO)
    run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(5)]

    for _ in range(5):
        mesh.execute_next(owner_id="w")

    assert [step for step, _ in CALLS] == ["Reserve"] * 5
    assert not any(mesh.get_run(r).is_terminal for r in run_ids)
