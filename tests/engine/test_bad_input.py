"""Bad input gets a typed error with a stable code, writes nothing, and never echoes the value."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument, InvalidRunId, InvalidSignal, SquidMeshError
from squidmesh_es.runtime import Signal

from engine_workflows import CALLS, Approved, Paused, Sequential

SECRET = "sk-live-0123456789abcdef"
PATH = "/home/ana/.ssh/id_ed25519"


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def journal_size(mesh: SquidMesh) -> int:
    return len(list(mesh.recorder.select_notifications(start=1, limit=10_000)))


def paused(mesh: SquidMesh, workflow: type) -> str:
    run_id = mesh.start(workflow, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")
    return run_id


def leaks(error: SquidMeshError, value: str) -> bool:
    return value in str(error) or value in json.dumps(error.to_dict(), default=str)


@pytest.mark.parametrize("actor", ["", "   ", "\t"])
@pytest.mark.parametrize(
    "control",
    [
        lambda mesh, run_id, actor: mesh.approve(run_id, actor=actor),
        lambda mesh, run_id, actor: mesh.reject(run_id, actor=actor),
        lambda mesh, run_id, actor: mesh.cancel(run_id, actor=actor),
        lambda mesh, run_id, actor: mesh.apply_signal(Signal.approve_run(run_id, actor=actor)),
    ],
    ids=["approve", "reject", "cancel", "signal"],
)
def test_a_blank_actor_is_refused_and_nothing_is_resolved(
    mesh: SquidMesh, control: Callable[[SquidMesh, str, str], object], actor: str
) -> None:
    run_id = paused(mesh, Approved)
    before = journal_size(mesh)

    with pytest.raises(InvalidSignal) as refused:
        control(mesh, run_id, actor)

    assert refused.value.code == "invalid_signal"
    assert [issue.path for issue in refused.value.issues] == [("actor",)]
    assert journal_size(mesh) == before
    assert mesh.inspect_run(run_id).status == "paused"


def test_a_blank_actor_on_resume_is_refused(mesh: SquidMesh) -> None:
    run_id = paused(mesh, Paused)

    with pytest.raises(InvalidSignal):
        mesh.resume(run_id, actor=" ")
    assert mesh.inspect_run(run_id).status == "paused"


def test_an_empty_queue_name_is_refused_not_replaced_by_the_default(mesh: SquidMesh) -> None:
    before = journal_size(mesh)

    with pytest.raises(InvalidArgument) as refused:
        mesh.start(Sequential, {"order_id": "o1"}, queue="")

    assert (refused.value.code, refused.value.option) == ("invalid_option", "queue")
    assert journal_size(mesh) == before
    with pytest.raises(InvalidArgument):
        mesh.execute_next(owner_id="w", queue="")


@pytest.mark.parametrize(
    "not_a_signal",
    [None, "approve_run", {"kind": "approve_run"}, 42],
    ids=["none", "text", "mapping", "number"],
)
def test_apply_signal_of_something_else_raises_a_typed_error(
    mesh: SquidMesh, not_a_signal: object
) -> None:
    with pytest.raises(InvalidSignal) as refused:
        mesh.apply_signal(not_a_signal)  # type: ignore[arg-type]

    assert refused.value.code == "invalid_signal"
    assert refused.value.codes == {"not_a_signal"}


@pytest.mark.parametrize("value", [SECRET, PATH])
@pytest.mark.parametrize(
    "call",
    [
        lambda mesh, value: mesh.inspect_run(value),
        lambda mesh, value: mesh.cancel(value),
        lambda mesh, value: mesh.approve(value),
        lambda mesh, value: Signal.resume_run(value),
        lambda mesh, value: Signal.model_validate_json(
            json.dumps({"kind": "cancel_run", "run_id": value})
        ),
    ],
    ids=["inspect", "cancel", "approve", "signal", "signal-json"],
)
def test_an_invalid_run_id_is_not_repeated_in_the_error(
    mesh: SquidMesh, call: Callable[[SquidMesh, str], object], value: str
) -> None:
    with pytest.raises(InvalidRunId) as refused:
        call(mesh, value)

    assert str(refused.value) == "run id is not a UUID"
    assert not leaks(refused.value, value)


@pytest.mark.parametrize(
    "call",
    [
        lambda mesh: mesh.get_queue(PATH),
        lambda mesh: mesh.list_runs(status=PATH),
        lambda mesh: mesh.register(PATH),
        lambda mesh: SquidMesh.open(f"x{SECRET}://host/db"),
    ],
    ids=["queue", "status", "workflow", "database-url"],
)
def test_other_refused_values_are_not_repeated_either(
    mesh: SquidMesh, call: Callable[[SquidMesh], object]
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        call(mesh)

    assert not leaks(refused.value, PATH) and not leaks(refused.value, SECRET)
