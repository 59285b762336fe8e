"""Queue partitions: a run's work lives on one of several queue aggregates, fixed at its start."""

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

from squidmesh_es import SquidMesh
from squidmesh_es.domain import (
    PRESENCE_INTERVAL,
    DispatchQueue,
    WorkerRegistry,
    WorkflowRun,
    partition_of,
    queue_id,
)
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import SystemClock
from squidmesh_es.runtime._execution import claim_attempts, run_claimed, settle_partitions
from squidmesh_es.runtime._presence import load_registry, worker_rank
from squidmesh_es.runtime._worker import _visiting_order
from squidmesh_es.testing import ManualClock

from conftest import T0, OpenMesh
from engine_workflows import Approved, Quick

HERE = Path(__file__).parent


def test_runs_spread_over_partitions_and_each_keeps_its_own(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partitions=4)
    run_ids = mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(40)])

    assert mesh.queue_partitions_of() == ["default", "default#1", "default#2", "default#3"]
    for run_id in run_ids:
        run = mesh.get_run(run_id)
        assert run.partition == partition_of(run_id, 4)
        assert run.dispatch_queue == mesh.queue_partitions_of()[run.partition]
        assert [a.step for a in mesh.get_queue(run.dispatch_queue).attempts_of(run_id)] == [
            "reserve"
        ]
    used = Counter(mesh.get_run(r).partition for r in run_ids)
    assert set(used) == {0, 1, 2, 3}
    assert mesh.drain() == 120
    assert {mesh.inspect_run(r).status for r in run_ids} == {"completed"}


def test_the_partition_is_in_the_start_event(mesh: SquidMesh) -> None:
    partitioned = SquidMesh.open("memory://", queue_partitions=3)
    run_id = UUID(partitioned.start(Quick, {"order_id": "o1"}).run_id)
    started = next(iter(partitioned.events.get(run_id)))

    assert isinstance(started, WorkflowRun.RunStarted)
    assert started.partition == partition_of(run_id, 3)
    # one partition: the queue is the queue it always was
    single = mesh.start(Quick, {"order_id": "o2"}).run_id
    assert mesh.get_run(single).dispatch_queue == "default"
    assert mesh.get_queue().partitions == 1


def test_controls_and_inspection_find_the_runs_partition(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partitions=5)
    run_ids = [mesh.start(Approved, {"order_id": f"a{i}"}).run_id for i in range(10)]
    mesh.drain()
    for run_id in run_ids[:5]:
        assert mesh.inspect_run(run_id).status == "paused"
        mesh.approve(run_id, actor="ops")
    for run_id in run_ids[5:]:
        mesh.cancel(run_id, actor="ops")
    mesh.drain()

    assert len({mesh.get_run(r).partition for r in run_ids}) > 1
    for run_id in run_ids[:5]:
        assert mesh.inspect_run(run_id).status == "completed"
        assert mesh.explain_run(run_id).status == "completed"
    for run_id in run_ids[5:]:
        assert mesh.inspect_run(run_id).status == "cancelled"
        assert mesh.get_queue(mesh.get_run(run_id).dispatch_queue).is_closed(run_id)
    assert not mesh.recover().repaired


@pytest.mark.shared_journal
def test_a_worker_with_one_partition_configured_still_polls_every_recorded_one(
    open_mesh: OpenMesh,
) -> None:
    starter = open_mesh(queue_partitions=4)
    run_ids = starter.start_many(Quick, [{"order_id": f"o{i}"} for i in range(12)])
    worker_side = open_mesh(workflows=[Quick])  # its own setting is 1

    assert worker_side.queue_partitions_of() == starter.queue_partitions_of()
    assert worker_side.drain() == 36
    assert {worker_side.inspect_run(r).status for r in run_ids} == {"completed"}


def test_the_recorded_count_only_grows(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partitions=4)
    mesh.start(Quick, {"order_id": "o1"})
    head = mesh.get_queue()
    version = head.version

    assert head.partitions == 4
    assert not head.widen(2, now=head.modified_on)
    assert head.version == version
    with pytest.raises(InvalidArgument) as refused:
        head.widen(0, now=head.modified_on)
    assert refused.value.code == "invalid_option"


@pytest.mark.parametrize("bad", [0, 257, True, "4"])
def test_a_bad_partition_count_is_refused_before_anything_is_created(
    bad: object, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    with pytest.raises(InvalidArgument) as refused:
        SquidMesh.open(f"sqlite:///{path}", queue_partitions=bad)  # type: ignore[arg-type]

    assert refused.value.code == "invalid_option"
    assert not path.exists()


@pytest.mark.parametrize(
    "name", ["default#0", "default#01", "default#", "#1", "a b#1", "q#1#2", "q#256", "q#\u00b2"]
)
def test_partition_names_are_checked(name: str) -> None:
    with pytest.raises(InvalidArgument):
        queue_id(name)


def test_partition_names_name_their_own_aggregates() -> None:
    assert queue_id("default#1") != queue_id("default")
    assert DispatchQueue.open("default#2", now=T0).queue == "default#2"


def test_a_queue_state_written_before_partitions_loads_with_one() -> None:
    queue = DispatchQueue.open("old", now=T0)
    state = queue.stored_state()
    del state["partitions"]
    snapshot = DispatchQueue.Snapshot(
        originator_id=queue.id,
        originator_version=queue.version,
        timestamp=T0,
        topic="squidmesh.DispatchQueue",
        state=state,
    )

    assert snapshot.mutate(None).partitions == 1


@pytest.mark.postgres_only
def test_worker_processes_on_partitions_run_each_attempt_once(
    open_mesh: OpenMesh, database_url: str, tmp_path: Path
) -> None:
    mesh = open_mesh(clock=SystemClock(), queue_partitions=3)
    run_ids = mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(60)])
    calls = tmp_path / "calls.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["SQUIDMESH_TEST_CALL_LOG"] = str(calls)
    command = [
        sys.executable, "-m", "squidmesh_es.cli", "worker",
        "--database-url", database_url, "--import", "engine_workflows", "--concurrency", "2",
    ]  # fmt: skip
    workers = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(3)]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(mesh.get_run(r).is_terminal for r in run_ids):
                break
            time.sleep(0.1)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30)[1] for worker in workers]

    assert all(mesh.get_run(r).terminal_status == "completed" for r in run_ids), outputs
    keys = Counter(line.split()[0] for line in calls.read_text().splitlines())
    assert len(keys) == 60 * 3 and set(keys.values()) == {1}
    assert all(len(mesh.get_queue(name)) == 0 for name in mesh.queue_partitions_of())


@pytest.mark.parametrize(
    ("rank", "live", "turn", "expected"),
    [
        (0, 1, 0, [0, 1, 2, 3]),
        (0, 1, 1, [1, 2, 3, 0]),
        (0, 2, 0, [0, 2, 1, 3]),
        (0, 2, 1, [2, 0, 3, 1]),
        (1, 2, 0, [1, 3, 2, 0]),
        (3, 4, 7, [3, 0, 1, 2]),
        (5, 6, 0, [1, 2, 3, 0]),  # more workers than partitions: a shared one
    ],
)
def test_a_worker_visits_its_own_partitions_first_taking_turns(
    rank: int, live: int, turn: int, expected: list[int]
) -> None:
    names = [f"q#{k}" if k else "q" for k in range(4)]

    order = _visiting_order(names, rank, live, turn)

    assert order == [names[k] for k in expected]


@pytest.mark.parametrize(
    ("rank", "live", "under_way", "expected"),
    [
        (0, 1, {"q#2"}, [2, 0, 1, 3]),  # alone: a partition just settled comes first
        (0, 2, {"q#2"}, [2, 0, 1, 3]),  # its own: first
        (0, 2, {"q#1"}, [0, 2, 1, 3]),  # another worker's: keeps its place
    ],
)
def test_a_worker_takes_its_own_partitions_with_runs_under_way_first(
    rank: int, live: int, under_way: set[str], expected: list[int]
) -> None:
    names = [f"q#{k}" if k else "q" for k in range(4)]

    order = _visiting_order(names, rank, live, 0, under_way)

    assert order == [names[k] for k in expected]


def test_workers_rank_by_start_among_the_live_ones(mesh: SquidMesh, clock: ManualClock) -> None:
    for owner in ("b", "a", "c"):
        mesh.save(registry_with(mesh, owner))
        clock.advance(timedelta(seconds=1))
    registry = load_registry(mesh, now=mesh.now())

    assert [worker_rank(registry, o, now=mesh.now()) for o in ("b", "a", "c")] == [
        (0, 3),
        (1, 3),
        (2, 3),
    ]
    assert worker_rank(registry, "unknown", now=mesh.now()) == (3, 4)
    later = mesh.now() + 10 * PRESENCE_INTERVAL  # nobody seen since: none is live
    assert worker_rank(registry, "a", now=later) == (0, 1)


def test_one_commit_settles_and_claims_on_several_partitions(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(queue_partitions=3)
    mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(12)])
    partitions = mesh.queue_partitions_of()
    claims = [
        c
        for p in partitions
        for c in claim_attempts(mesh, p, owner_id="w", limit=2, lease_for=LEASE, now=mesh.now())
    ]
    finished = {p: [run_claimed(mesh, c) for c in claims if c.queue == p] for p in partitions}
    saves: list[int] = []
    real_save = mesh.save
    mesh.save = lambda *objs, **kw: saves.append(len(objs)) or real_save(*objs, **kw)  # type: ignore[method-assign]

    parts, more = settle_partitions(
        mesh, finished, claim_order=partitions, now=mesh.now(), claim_more=5, owner_id="w"
    )

    assert len(saves) == 1
    assert all(parts[p].committed and not parts[p].refused for p in partitions)
    assert len(more) == 5
    assert all(c.key in mesh.get_run(c.attempt.run_id).applied for c in claims)


def registry_with(mesh: SquidMesh, owner: str) -> WorkerRegistry:
    registry = load_registry(mesh, now=mesh.now())
    registry.start(owner, queues=["default"], host="h", pid=1, lease_for=LEASE, now=mesh.now())
    return registry


LEASE = timedelta(seconds=30)
