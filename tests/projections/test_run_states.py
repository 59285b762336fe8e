"""RunStates: runs rolled forward through a follower's batches equal the journal's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from projection_helpers import drain, start_runs

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.projections._as_of import RunStates
from squidmesh_es.testing import ManualClock


def run_events(mesh: SquidMesh) -> list[Any]:
    notifications = mesh.recorder.select_notifications(start=1, limit=100_000)
    events = [mesh.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, WorkflowRun.Event)]


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
