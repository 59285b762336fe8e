"""A run's replays are found through the run index: ``list_runs(replayed_from_run_id=...)``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import Projections
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)


class Note(BaseModel):
    text: str = "hi"


class Write(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"written": True})


class Jot(Workflow):
    payload = Note
    triggers = [manual("jot")]
    write = step(Write)
    transitions = [transition(write, to=COMPLETE)]


@pytest.fixture
def projections(mesh: SquidMesh) -> Iterator[Projections]:
    followers = Projections.attach(mesh)
    yield followers
    followers.close()


def test_replays_of_a_run_are_listed(mesh: SquidMesh, projections: Projections) -> None:
    source = mesh.start(Jot, {"text": "a"}).run_id
    other = mesh.start(Jot, {"text": "b"}).run_id
    mesh.drain()
    first = mesh.replay(source, idempotency_key="again-1").run_id
    second = mesh.replay(source, idempotency_key="again-2").run_id
    mesh.replay(other)
    projections.catch_up()

    found = projections.list_runs(replayed_from_run_id=str(source))

    assert {r.run_id for r in found} == {str(first), str(second)}
    assert list(projections.list_runs(replayed_from_run_id=str(first))) == []


def test_a_replay_filter_that_is_not_a_run_id_is_refused(projections: Projections) -> None:
    with pytest.raises(InvalidArgument) as refused:
        projections.list_runs(replayed_from_run_id="not-a-run")

    assert refused.value.code == "invalid_option"
