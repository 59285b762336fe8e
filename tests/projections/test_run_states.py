"""RunStates and QueueStates: runs and queues rolled forward through batches equal the journal's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from projection_helpers import drain, start_runs

from squidmesh_es import SquidMesh
from squidmesh_es.domain import DispatchQueue, WorkflowRun
from squidmesh_es.projections import RunCatalog, RunInspection, _as_of
from squidmesh_es.projections._as_of import QueueStates, RunStates, marks_of, queue_views
from squidmesh_es.testing import ManualClock


def journal_events(mesh: SquidMesh) -> list[Any]:
    notifications = mesh.recorder.select_notifications(start=1, limit=100_000)
    return [mesh.mapper.to_domain_event(n) for n in notifications]


def run_events(mesh: SquidMesh) -> list[Any]:
    return [e for e in journal_events(mesh) if isinstance(e, WorkflowRun.Event)]


def queue_events(mesh: SquidMesh) -> list[Any]:
    return [e for e in journal_events(mesh) if isinstance(e, DispatchQueue.Event)]


def feed(states: RunStates, batch: list[Any]) -> dict[str, WorkflowRun]:
    by_run: dict[str, list[Any]] = {}
    for event in batch:
        by_run.setdefault(str(event.originator_id), []).append(event)
    return {
        run_id: states.at(run_id, events[-1].originator_version, events)
        for run_id, events in by_run.items()
    }


@pytest.mark.parametrize("batch_size", [1, 5, 500])
def test_rolled_forward_runs_equal_the_runs_loaded_at_the_same_version(
    mesh: SquidMesh, clock: ManualClock, batch_size: int
) -> None:
    start_runs(mesh, clock, 6)
    drain(mesh, clock)
    events = run_events(mesh)
    states = RunStates(mesh)

    for i in range(0, len(events), batch_size):
        for run_id, run in feed(states, events[i : i + batch_size]).items():
            loaded = mesh.repository.get(UUID(run_id), version=run.version)
            assert vars(run) == vars(loaded)


def test_a_gap_in_a_runs_events_loads_it_instead_of_rolling_forward(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    start_runs(mesh, clock, 2)
    drain(mesh, clock)
    events = run_events(mesh)
    states = RunStates(mesh)
    first = events[0]
    states.at(str(first.originator_id), 1, [first])
    later = [e for e in events if e.originator_id == first.originator_id][2:]  # version 2 lost

    run = states.at(str(first.originator_id), later[-1].originator_version, later)

    loaded = mesh.repository.get(first.originator_id, version=later[-1].originator_version)
    assert vars(run) == vars(loaded)


def test_ended_runs_are_not_kept_and_the_size_is_bounded(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    ids = start_runs(mesh, clock, 4)
    events = run_events(mesh)
    states = RunStates(mesh, size=2)

    feed(states, events)

    assert len(states._runs) == 2
    assert set(states._runs) <= set(ids)
    drain(mesh, clock)
    feed(states, run_events(mesh))
    assert all(r.terminal_status is None for r in states._runs.values())


@pytest.mark.parametrize("batch_size", [1, 5, 500])
@pytest.mark.parametrize("projection", [RunCatalog, RunInspection])
def test_queue_views_rolled_forward_equal_the_views_loaded_at_the_same_versions(
    mesh: SquidMesh,
    clock: ManualClock,
    batch_size: int,
    projection: type[RunCatalog],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_runs(mesh, clock, 6)
    drain(mesh, clock)
    events = queue_events(mesh)
    states = QueueStates(mesh)
    loads: list[Any] = []
    monkeypatch.setattr(_as_of, "queue_views", lambda *args: loads.append(args))
    compared = 0

    for i in range(0, len(events), batch_size):
        batch = events[i : i + batch_size]
        followed = [e for e in batch if e.TOPIC in projection.topics]
        wanted = {r: m.queue_version for r, m in marks_of(followed).items()}
        given = followed[::2]  # the others are read from the journal

        views = states.views("default", wanted, given)

        assert views == queue_views(mesh, "default", wanted)
        compared += len(views)
    assert compared >= 6  # every run, at least once
    assert loads == []  # every view came from the queue rolled forward


def test_a_queue_view_at_a_version_not_recorded_is_loaded(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    ids = start_runs(mesh, clock, 3)
    drain(mesh, clock)
    events = queue_events(mesh)
    states = QueueStates(mesh)
    states.views("default", {ids[0]: events[-1].originator_version}, events)
    first = next(e for e in events if e.TOPIC in RunCatalog.topics and e.run_id == ids[0])
    wanted = {ids[0]: first.originator_version, ids[1]: None}  # behind the queue kept

    views = states.views("default", wanted, [])

    assert views == queue_views(mesh, "default", wanted)
    assert views[ids[1]] == ([], None, [])
