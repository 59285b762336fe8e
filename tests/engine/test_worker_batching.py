"""Outcomes a moment apart share one commit; in-process writers of a queue take turns."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import DispatchQueue, queue_id
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import SystemClock

from conftest import OpenMesh
from engine_workflows import CALLS, Quick, SlowOne


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def _count_settling_commits(mesh: SquidMesh, step: str) -> list[int]:
    """Patch ``mesh.save``: one entry per commit that completes attempts of ``step``."""
    commits: list[int] = []
    real_save = mesh.save

    def counting_save(*objs: Any, **kwargs: Any) -> Any:
        completed = [
            e
            for o in objs
            for e in getattr(o, "pending_events", ())
            if isinstance(e, DispatchQueue.AttemptCompleted) and f":{step}:" in e.runnable_key
        ]
        result = real_save(*objs, **kwargs)
        if completed:
            commits.append(len(completed))
        return result

    mesh.save = counting_save  # type: ignore[method-assign]
    return commits


def _wait_terminal(mesh: SquidMesh, run_ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    while not all(mesh.get_run(r).is_terminal for r in run_ids):
        assert time.monotonic() < deadline, "runs did not finish in time"
        time.sleep(0.02)


@pytest.mark.parametrize(("window", "commits"), [(timedelta(seconds=1), [4]), (timedelta(0), None)])
def test_outcomes_finishing_within_the_window_share_one_commit(
    open_mesh: OpenMesh, window: timedelta, commits: list[int] | None
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_ids = [mesh.start(SlowOne, {"seconds": s}).run_id for s in (0.05, 0.1, 0.15, 0.2)]
    settling = _count_settling_commits(mesh, "slow")

    with mesh.worker(concurrency=4, owner_id="batcher", batch_window=window):
        _wait_terminal(mesh, run_ids)

    assert sum(settling) == 4
    if commits is not None:
        assert settling == commits  # the last finished 150 ms after the first
    else:
        assert len(settling) > 1  # each outcome committed as it came


@pytest.mark.parametrize("window", [timedelta(seconds=-1), timedelta(seconds=2), 5])
def test_a_bad_batch_window_is_refused(mesh: SquidMesh, window: Any) -> None:
    with pytest.raises(InvalidArgument) as refused:
        mesh.worker(batch_window=window)

    assert refused.value.option == "batch_window"


def test_a_large_batch_start_beside_a_busy_worker_takes_its_turn(mesh: SquidMesh) -> None:
    # Deciding a batch of 100 starts takes longer than the busy worker takes between two
    # commits to the same queue: without taking turns the batch would lose every race.
    backlog = mesh.start_many(Quick, [{"order_id": f"b{i}"} for i in range(400)])
    started: list[Any] = []
    errors: list[BaseException] = []

    with mesh.worker(concurrency=4, owner_id="busy"):

        def start_batches() -> None:
            try:
                for batch in range(2):
                    started.extend(
                        mesh.start_many(Quick, [{"order_id": f"s{batch}-{i}"} for i in range(100)])
                    )
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        starter = threading.Thread(target=start_batches)
        starter.start()
        starter.join(60)
        _wait_terminal(mesh, [str(r) for r in [*backlog, *started]])

    assert errors == [] and len(started) == 200


def _watch_claims_in_hand(worker: Any, run_ids: list[str], mesh: SquidMesh) -> int:
    peak = 0
    deadline = time.monotonic() + 30
    while not all(mesh.get_run(r).is_terminal for r in run_ids):
        assert time.monotonic() < deadline, "runs did not finish in time"
        peak = max(peak, len(worker._held))
        time.sleep(0.001)
    return peak


def test_short_steps_are_claimed_ahead_while_threads_stay_at_the_concurrency(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_ids = [str(r) for r in mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(60)])]

    with mesh.worker(concurrency=2, owner_id="ahead") as worker:
        peak = _watch_claims_in_hand(worker, run_ids, mesh)
        threads = {t.name for t in threading.enumerate() if t.name.startswith("squidmesh-step")}

    assert worker._slots() == 4 and 2 < peak <= 4
    assert len(threads) <= 2


def test_long_steps_are_never_claimed_ahead(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_ids = [str(mesh.start(SlowOne, {"seconds": 0.06}).run_id) for _ in range(6)]

    with mesh.worker(concurrency=2, owner_id="patient") as worker:
        peak = _watch_claims_in_hand(worker, run_ids, mesh)

    assert worker._slots() == 2
    assert peak <= 2


def _hold_both(worker: Any) -> None:
    deadline = time.monotonic() + 10
    while len(worker._held) < 2:
        assert time.monotonic() < deadline, "the worker did not claim ahead"
        time.sleep(0.005)


def _wait_started(run_id: object) -> None:
    deadline = time.monotonic() + 10
    while not any(key.startswith(str(run_id)) for _, key in CALLS):
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.005)


def _returned(mesh: SquidMesh, owner: str) -> list[str]:
    return [
        key
        for e in mesh.events.get(queue_id(mesh.default_queue))
        if isinstance(e, DispatchQueue.ClaimsReturned) and e.owner_id == owner
        for key in e.runnable_keys
    ]


def _short_behind_long(mesh: SquidMesh, worker: Any, *, long_seconds: float) -> list[UUID]:
    """A long run's step running in ``worker``'s one thread, a short run's claimed behind it.

    The worker first runs enough short steps to claim ahead.
    """
    warm = mesh.start_many(Quick, [{"order_id": f"w{i}"} for i in range(12)])
    _wait_terminal(mesh, [str(r) for r in warm])
    assert worker._slots() == 2 * worker.concurrency
    runs = mesh.start_many(SlowOne, [{"seconds": long_seconds}, {"seconds": 0.0}])
    _hold_both(worker)  # the short run's step waits behind the long one in its thread
    _wait_started(runs[0])
    return runs


def test_a_claim_taken_ahead_behind_a_step_that_turned_long_goes_to_a_free_worker(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(clock=SystemClock())
    with mesh.worker(concurrency=1, owner_id="ahead") as ahead:
        long_run, short_run = _short_behind_long(mesh, ahead, long_seconds=5.0)
        began = time.monotonic()
        with mesh.worker(concurrency=1, owner_id="free"):
            _wait_terminal(mesh, [str(short_run)])
            took = time.monotonic() - began
            assert not mesh.get_run(long_run).is_terminal

    assert took < 4.0  # given back after CLAIM_AHEAD_WAIT, not after the 5 s step
    assert any(key.startswith(str(short_run)) for key in _returned(mesh, "ahead"))
    short_steps = [k for name, k in CALLS if name == "Slow" and k.startswith(str(short_run))]
    assert len(short_steps) == 1  # run once, by the free worker


def test_a_stopping_worker_gives_back_the_claims_it_has_not_started(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(clock=SystemClock())
    with mesh.worker(concurrency=1, owner_id="ahead") as ahead:
        long_run, short_run = _short_behind_long(mesh, ahead, long_seconds=0.5)
        ahead.stop()

    assert not [k for _, k in CALLS if k.startswith(str(short_run))]  # never started here
    assert any(key.startswith(str(short_run)) for key in _returned(mesh, "ahead"))
    assert mesh.drain() == 3  # long_run's second step and short_run's two
    assert mesh.get_run(short_run).terminal_status == "completed"
    assert mesh.get_run(long_run).terminal_status == "completed"
