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


def test_list_runs_needs_attached_projections(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument):
        mesh.list_runs()


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
