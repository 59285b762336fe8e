"""A queue's partitions double when starts fill one past its limit: no partition grows
with the backlog."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from squidmesh_es import SquidMesh
from squidmesh_es.domain import MAX_PARTITIONS, partition_of
from squidmesh_es.errors import Conflict, InvalidArgument
from squidmesh_es.runtime import SystemClock
from squidmesh_es.runtime._execution import claim_attempts, run_claimed, settle_partitions
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh
from engine_workflows import CALLS, Quick

LEASE = timedelta(seconds=60)


def _sizes(mesh: SquidMesh) -> list[int]:
    return [len(mesh.get_queue(p)) for p in mesh.queue_partitions_of()]


def test_a_start_past_the_limit_doubles_the_partitions_and_later_runs_fill_the_new_half(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(queue_partition_limit=8)
    first = [mesh.start(Quick, {"order_id": f"a{i}"}).run_id for i in range(9)]

    assert mesh.queue_partitions_of() == ["default", "default#1"]
    assert _sizes(mesh) == [9, 0]  # runs never move: the count applies to later starts

    second = [mesh.start(Quick, {"order_id": f"b{i}"}).run_id for i in range(9)]
    assert {mesh.get_run(r).partition for r in second} == {1}  # partition 0 is full
    assert len(mesh.queue_partitions_of()) == 4

    third = mesh.start_many(Quick, [{"order_id": f"c{i}"} for i in range(12)])
    for run_id in third:
        assert mesh.get_run(run_id).partition == 2 + partition_of(run_id, 2)

    assert mesh.drain() == 3 * 30
    assert {mesh.inspect_run(r).status for r in [*first, *second, *third]} == {"completed"}


def test_partitions_stay_bounded_while_a_backlog_grows(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partition_limit=16)
    for batch in range(12):
        mesh.start_many(Quick, [{"order_id": f"b{batch}-{i}"} for i in range(16)])

    sizes = _sizes(mesh)
    assert sum(sizes) == 12 * 16
    assert len(sizes) >= 8 and max(sizes) <= 16 + 16  # the limit, plus one batch on top


def test_the_count_stops_at_the_most_a_queue_may_have(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partitions=MAX_PARTITIONS, queue_partition_limit=1)
    mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(3)])
    mesh.start(Quick, {"order_id": "again"})

    assert len(mesh.queue_partitions_of()) == MAX_PARTITIONS


def test_without_a_limit_the_queue_keeps_one_partition(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partition_limit=None)
    mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(50)])

    assert mesh.queue_partitions_of() == ["default"]


def test_a_widening_that_fails_leaves_the_committed_start_alone(
    open_mesh: OpenMesh, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = open_mesh(queue_partition_limit=2)

    def moving(queue: str, count: int) -> None:
        raise Conflict("queue kept moving while recording its partitions", queue=queue)

    monkeypatch.setattr(mesh, "_record_partitions", moving)
    with caplog.at_level(logging.WARNING, logger="squidmesh_es"):
        run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(4)]

    assert len({str(r) for r in run_ids}) == 4
    assert "partitions of default not widened: conflict" in caplog.text
    assert mesh.drain() == 12


def test_a_database_error_while_widening_does_not_report_the_committed_start_as_failed(
    open_mesh: OpenMesh, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = open_mesh(queue_partition_limit=2)

    def connection_lost(queue: str, count: int) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(mesh, "_record_partitions", connection_lost)
    with caplog.at_level(logging.WARNING, logger="squidmesh_es"):
        run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(4)]

    assert len({str(r) for r in run_ids}) == 4  # a caller that retried would start twice
    assert "partitions of default not widened" in caplog.text
    assert mesh.drain() == 12


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "64"])
def test_a_bad_limit_is_refused_before_anything_is_created(bad: object, tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with pytest.raises(InvalidArgument) as refused:
        SquidMesh.open(f"sqlite:///{path}", queue_partition_limit=bad)  # type: ignore[arg-type]

    assert refused.value.option == "queue_partition_limit"
    assert not path.exists()


def test_a_worker_takes_the_next_steps_of_runs_under_way_before_visiting_other_partitions(
    open_mesh: OpenMesh,
) -> None:
    CALLS.clear()
    mesh = open_mesh(queue_partitions=8, clock=SystemClock())
    run_ids = mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(32)])

    with mesh.worker(concurrency=1, owner_id="one"):
        deadline = time.monotonic() + 30
        while not all(mesh.get_run(r).is_terminal for r in run_ids):
            assert time.monotonic() < deadline, "runs did not finish in time"
            time.sleep(0.02)

    open_runs: set[str] = set()
    most_open = 0
    for step, key in CALLS:
        run = key.split(":")[0]
        open_runs.add(run)
        most_open = max(most_open, len(open_runs))
        if step == "Ship":
            open_runs.discard(run)
    assert len(CALLS) == 96
    assert most_open <= 2  # one in hand, one claimed ahead: never one per partition


def test_a_backlog_on_one_queue_does_not_hold_back_the_worker_s_other_queue(
    open_mesh: OpenMesh,
) -> None:
    CALLS.clear()
    mesh = open_mesh(clock=SystemClock())
    bulk = mesh.start_many(Quick, [{"order_id": f"b{i}"} for i in range(40)], queue="bulk")

    with mesh.worker(queues=["critical", "bulk"], concurrency=1, owner_id="both"):
        deadline = time.monotonic() + 30
        while len(CALLS) < 6:  # the worker is busy settling on bulk
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.005)
        urgent = mesh.start(Quick, {"order_id": "urgent"}, queue="critical").run_id
        while not all(mesh.get_run(r).is_terminal for r in [*bulk, urgent]):
            assert time.monotonic() < deadline, "runs did not finish in time"
            time.sleep(0.02)

    last_urgent = max(i for i, (_, key) in enumerate(CALLS) if key.startswith(str(urgent)))
    assert last_urgent < 60  # long before the 120 bulk steps are done


def test_one_commit_claims_the_next_steps_of_the_runs_it_settled_before_any_new_run(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    mesh = open_mesh(queue_partitions=2)
    mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(8)])
    partitions = mesh.queue_partitions_of()
    now = clock.now()
    first = [
        claim
        for p in partitions
        for claim in claim_attempts(mesh, p, owner_id="w", limit=1, lease_for=LEASE, now=now)
    ]
    assert len(first) == 2

    _, claims = settle_partitions(
        mesh,
        {claim.queue: [run_claimed(mesh, claim)] for claim in first},
        claim_order=partitions,
        now=clock.now(),
        claim_more=2,
        owner_id="w",
        lease_for=LEASE,
    )

    assert sorted(c.attempt.run_id for c in claims) == sorted(c.attempt.run_id for c in first)
    assert {c.attempt.step for c in claims} == {"charge"}
