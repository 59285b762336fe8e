"""Starting a backlog in one commit: all runs or none."""

from __future__ import annotations

import time

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import PayloadValidationError

from engine_workflows import Quick


def test_start_many_commits_every_run_at_once_and_they_run(mesh: SquidMesh) -> None:
    before = mesh.get_queue().version
    commits: list[int] = []
    real_save = mesh.save

    def counting_save(*objs: object, **kwargs: object) -> object:
        commits.append(len(objs))
        return real_save(*objs, **kwargs)

    mesh.save = counting_save  # type: ignore[method-assign]
    run_ids = mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(25)])
    mesh.save = real_save  # type: ignore[method-assign]

    assert len(commits) == 1 and len(set(run_ids)) == 25
    assert mesh.get_queue().version == before + 50  # each run: RunQueued, AttemptScheduled
    assert mesh.drain() == 75
    assert {mesh.inspect_run(r).status for r in run_ids} == {"completed"}


def test_one_bad_payload_refuses_the_whole_batch(mesh: SquidMesh) -> None:
    before = mesh.get_queue().version

    with pytest.raises(PayloadValidationError):
        mesh.start_many(Quick, [{"order_id": "o1"}, {"amount": 3}])

    assert mesh.get_queue().version == before
    assert mesh.drain() == 0


def test_start_many_beside_a_busy_worker_decides_again_instead_of_failing(mesh: SquidMesh) -> None:
    started: list[str] = []
    with mesh.worker(concurrency=2, owner_id="busy"):
        for batch in range(15):
            ids = mesh.start_many(Quick, [{"order_id": f"b{batch}-{n}"} for n in range(8)])
            started.extend(str(i) for i in ids)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(mesh.get_run(r).is_terminal for r in started):
            time.sleep(0.02)

    assert len(started) == 120
    assert {mesh.get_run(r).terminal_status for r in started} == {"completed"}
