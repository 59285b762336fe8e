"""The committed-state cache: a load after this process's own commit reads nothing back.

`SquidMesh.save` caches a copy of each run and queue it committed. Loads still fast-forward
from the journal, so another process's writes are seen exactly as before.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import TerminalStatus, queue_id
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh
from engine_workflows import Quick


def test_a_load_after_the_commit_reads_no_event_back(
    mesh: SquidMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    stored = {
        "run": len(list(mesh.repository.event_store.get(UUID(run_id)))),
        "queue": len(list(mesh.repository.event_store.get(queue_id(mesh.default_queue)))),
    }
    read: list[int] = []
    real_get = mesh.repository.event_store.get

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        events = list(real_get(*args, **kwargs))
        read.append(len(events))
        return iter(events)

    monkeypatch.setattr(mesh.repository.event_store, "get", counting_get)

    run, queue = mesh.get_run(run_id), mesh.get_queue()

    assert read and sum(read) == 0  # each load looked for newer events and found none
    assert (run.version, queue.version) == (stored["run"], stored["queue"])


def test_the_cached_copy_is_not_the_saved_object(mesh: SquidMesh, clock: ManualClock) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    run = mesh.get_run(run_id)
    run.end(TerminalStatus.CANCELLED, now=clock.now())  # decided, never saved

    again = mesh.get_run(run_id)

    assert not again.is_terminal
    assert again.version == run.version - len(run.pending_events)


def test_an_older_copy_does_not_replace_a_newer_cached_one(mesh: SquidMesh) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    old = mesh.get_run(run_id)
    assert mesh.drain() == 3
    newer = mesh.get_run(run_id)

    mesh._cache_committed([old])  # a slow thread reporting an earlier commit

    assert mesh.get_run(run_id).version == newer.version
    assert mesh.get_run(run_id).is_terminal


@pytest.mark.shared_journal
def test_another_process_writes_are_still_seen(open_mesh: OpenMesh) -> None:
    starter = open_mesh(workflows=[Quick])
    worker = open_mesh(workflows=[Quick])
    run_id = starter.start(Quick, {"order_id": "o1"}).run_id
    assert not starter.get_run(run_id).is_terminal  # cached in the starter now

    assert worker.drain() == 3

    assert starter.get_run(run_id).terminal_status == "completed"
    assert starter.get_queue().version == worker.get_queue().version


@pytest.mark.shared_journal
def test_work_another_process_started_after_the_commit_is_drained_here(
    open_mesh: OpenMesh,
) -> None:
    first = open_mesh(workflows=[Quick])
    second = open_mesh(workflows=[Quick])
    run_id = first.start(Quick, {"order_id": "o1"}).run_id
    first.get_queue()
    second.start(Quick, {"order_id": "o2"})  # first's cached queue is now one run behind

    assert first.drain() == 6
    assert first.get_run(run_id).terminal_status == "completed"
