"""The runtime lists runs through the attached projections, without waiting on them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import Projections
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import COMPLETE, Workflow, manual, step, transition

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
