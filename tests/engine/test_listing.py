"""The runtime lists runs through the attached projections, without waiting on them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import Projections
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import COMPLETE, Deadline, Workflow, manual, pause, step, transition

from engine_workflows import Order, Reserve


class Indexed(Workflow):
    payload = Order
    triggers = [manual("go")]
    index_keys = ["order_id"]

    reserve = step(Reserve)
    transitions = [transition(reserve, to=COMPLETE)]


def test_list_runs_answers_from_the_journal_without_projections(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    assert mesh.list_runs() == []
    first = mesh.start(Indexed, {"order_id": "A-1"}).run_id
    clock.advance(timedelta(seconds=1))
    second = mesh.start(Indexed, {"order_id": "B-2"}).run_id
    clock.advance(timedelta(seconds=1))
    held = mesh.start(Held, {"order_id": "C-3"}, queue="manual").run_id
    mesh.drain(owner_id="w")
    mesh.drain(owner_id="w", queue="manual")

    listed = mesh.list_runs()

    assert [r.run_id for r in listed] == [held, second, first]
    assert [r.run_id for r in mesh.list_runs(workflow=Indexed, limit=1)] == [second]
    assert [r.run_id for r in mesh.list_runs(status="paused")] == [held]
    assert [r.run_id for r in mesh.list_runs(queue="manual")] == [held]
    assert [r.run_id for r in mesh.list_runs(status="completed", trigger="go")] == [second, first]
    assert listed[0].deadline is not None and listed[0].deadline.status == "on_time"


def test_list_runs_from_the_journal_agrees_with_the_catalog(mesh: SquidMesh) -> None:
    mesh.start(Indexed, {"order_id": "A-1"})
    mesh.start(Held, {"order_id": "B-2"})
    mesh.drain(owner_id="w")
    from_journal = mesh.list_runs()

    with Projections.attach(mesh):
        from_catalog = mesh.list_runs()

    assert [(r.run_id, r.status, r.terminal_status) for r in from_journal] == [
        (r.run_id, r.status, r.terminal_status) for r in from_catalog
    ]


def test_without_projections_catalog_only_filters_are_refused(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument) as refused:
        mesh.list_runs(index={"order_id": "A-1"})

    assert refused.value.option == "index"
    with pytest.raises(InvalidArgument):
        mesh.list_runs(status="sleeping")


def test_list_runs_reads_the_catalog_newest_first_and_by_index_key(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    with Projections.attach(mesh):
        first = mesh.start(Indexed, {"order_id": "A-1"}).run_id
        clock.advance(timedelta(seconds=1))
        second = mesh.start(Indexed, {"order_id": "B-2"}).run_id
        mesh.drain(owner_id="w")

        listed = mesh.list_runs(workflow=Indexed)
        by_key = mesh.list_runs(index={"order_id": "B-2"})

    assert [r.run_id for r in listed] == [second, first]
    assert all(r.terminal_status == "completed" for r in listed)
    assert [r.run_id for r in by_key] == [second]


class Held(Workflow):
    payload = Order
    triggers = [manual("go")]

    hold = pause(deadline=Deadline(within=timedelta(hours=4), due_soon=timedelta(hours=1)))
    transitions = [transition(hold, to=COMPLETE)]


def test_listed_deadlines_are_evaluated_when_listed_not_when_written(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    with Projections.attach(mesh):
        mesh.start(Held, {"order_id": "A-1"})
        mesh.drain(owner_id="w")
        assert [r.deadline.status for r in mesh.list_runs() if r.deadline] == ["on_time"]

        clock.advance(timedelta(hours=3))  # no new event: the catalog row is unchanged
        due_soon = mesh.list_runs()
        overdue = mesh.list_runs(now=clock.now() + timedelta(hours=1))

    assert [r.deadline.status for r in due_soon if r.deadline] == ["due_soon"]
    assert [r.deadline.status for r in overdue if r.deadline] == ["overdue"]


def test_listed_runs_carry_their_trigger_and_times_from_journal_and_catalog_alike(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = clock.now()
    done = mesh.start(Indexed, {"order_id": "A-1"}).run_id
    held = mesh.start(Held, {"order_id": "B-2"}).run_id
    clock.advance(timedelta(minutes=5))
    mesh.drain(owner_id="w")
    from_journal = mesh.list_runs()

    with Projections.attach(mesh):
        from_catalog = mesh.list_runs()

    ended = started + timedelta(minutes=5)
    times = {
        done: ("go", started, ended, ended),
        held: ("go", started, started, None),  # paused when it started
    }
    for listed in (from_journal, from_catalog):
        assert {r.run_id: (r.trigger, r.started_at, r.updated_at, r.ended_at) for r in listed} == (
            times
        )
