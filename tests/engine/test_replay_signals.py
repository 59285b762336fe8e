"""Signal.replay_run: replay as a command envelope, its receipt, its key and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import (
    DefinitionMismatch,
    InvalidArgument,
    InvalidReplaySource,
    InvalidRunId,
    RunNotFound,
    UnsafeReplay,
)
from squidmesh_es.runtime import Signal, SignalType, WorkflowRegistry
from squidmesh_es.workflow import (
    COMPLETE,
    CronIdempotency,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    cron,
    step,
    transition,
)

from conftest import OpenMesh
from engine_workflows import CALLS, Notifying, Sequential, Ship

LATER = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def written(mesh: SquidMesh) -> int:
    return mesh.recorder.max_notification_id() or 0


def finished(mesh: SquidMesh, workflow: type = Sequential) -> str:
    run_id = mesh.start(workflow, {"order_id": "o1", "amount": 7}).run_id
    mesh.drain(owner_id="w")
    return run_id


def test_a_replay_signal_records_its_receipt_first_on_the_new_run(mesh: SquidMesh) -> None:
    source = finished(mesh)

    replayed = mesh.apply_signal(
        Signal.replay_run(
            source,
            actor="ops",
            comment="after the fix",
            metadata={"ticket": "T-3"},
            occurred_at=LATER,
        )
    )

    assert replayed.replayed_from_run_id == source
    assert replayed.input == {"order_id": "o1", "amount": 7}
    [receipt] = mesh.inspect_run(replayed.run_id, include_history=True).command_history
    assert (receipt.signal_type, receipt.actor, receipt.comment) == (
        "replay_run",
        "ops",
        "after the fix",
    )
    assert receipt.occurred_at == LATER
    assert receipt.idempotency_key == f"replay_run:{source}"
    assert receipt.metadata == {"ticket": "T-3"}
    assert receipt.payload == {
        "workflow": Sequential.name,
        "trigger": "place",
        "run_id": source,
        "allow_irreversible": False,
        "blocking_steps": [],
    }
    signals = [c["signal_type"] for c in mesh.get_run(source).command_history]
    assert signals == ["start_run"]  # the source's journal is left alone


def test_delivering_the_same_replay_signal_twice_returns_one_new_run(mesh: SquidMesh) -> None:
    source = finished(mesh)
    signal = Signal.replay_run(source, actor="ops")
    first = mesh.apply_signal(signal)
    before = written(mesh)

    again = mesh.apply_signal(signal)
    by_method = mesh.replay(source)

    assert again.run_id == by_method.run_id == first.run_id
    assert len(mesh.get_run(first.run_id).command_history) == 1
    assert written(mesh) == before


def test_another_key_is_another_replay_with_its_own_receipt(mesh: SquidMesh) -> None:
    source = finished(mesh)

    first = mesh.apply_signal(Signal.replay_run(source))
    second = mesh.apply_signal(Signal.replay_run(source, idempotency_key="second", actor="bo"))

    assert second.run_id != first.run_id
    assert second.replayed_from_run_id == source
    [receipt] = mesh.get_run(second.run_id).command_history
    assert (receipt["idempotency_key"], receipt["actor"]) == ("second", "bo")


def test_a_repeated_key_is_answered_even_if_the_source_is_unsafe_now(mesh: SquidMesh) -> None:
    source = finished(mesh, Notifying)
    allowed = mesh.apply_signal(Signal.replay_run(source, allow_irreversible=True))
    before = written(mesh)

    again = mesh.apply_signal(Signal.replay_run(source))  # same default key, no override

    assert again.run_id == allowed.run_id
    assert written(mesh) == before
    payload = mesh.get_run(allowed.run_id).command_history[0]["payload"]
    assert (payload["allow_irreversible"], payload["blocking_steps"]) == (True, ["notify"])


@pytest.mark.parametrize("allow", [False, 1, "yes"])
def test_an_unsafe_replay_is_refused_unless_allowed_exactly_and_writes_nothing(
    mesh: SquidMesh, allow: object
) -> None:
    source = finished(mesh, Notifying)
    before = written(mesh)

    with pytest.raises(UnsafeReplay) as refused:
        mesh.apply_signal(Signal.replay_run(source, allow_irreversible=allow))  # type: ignore[arg-type]

    assert refused.value.code == "unsafe_replay"
    assert refused.value.blocking_steps == ["notify"]
    assert written(mesh) == before


def test_a_runtime_spec_source_is_refused_and_nothing_is_written(mesh: SquidMesh) -> None:
    run = WorkflowRun.start(
        run_id=uuid4(),
        workflow=Sequential.name,
        trigger="place",
        input={"order_id": "o1", "amount": 7},
        queue="default",
        now=LATER,
        spec={"name": "authored at run time"},
    )
    mesh.save(run)
    before = written(mesh)

    with pytest.raises(InvalidReplaySource) as refused:
        mesh.apply_signal(Signal.replay_run(run.run_id, allow_irreversible=True))

    assert (refused.value.code, refused.value.reason) == ("invalid_replay_source", "runtime_spec")
    assert written(mesh) == before


def test_a_source_whose_workflow_is_not_registered_is_refused(mesh: SquidMesh) -> None:
    source = finished(mesh)
    mesh.workflows = WorkflowRegistry()
    before = written(mesh)

    with pytest.raises(InvalidReplaySource) as refused:
        mesh.apply_signal(Signal.replay_run(source))

    assert refused.value.reason == "workflow"
    assert written(mesh) == before


def test_a_missing_or_malformed_source_is_refused(mesh: SquidMesh) -> None:
    before = written(mesh)

    with pytest.raises(RunNotFound):
        mesh.apply_signal(Signal.replay_run(uuid4()))
    with pytest.raises(InvalidRunId):
        Signal.replay_run("not-a-uuid")
    assert written(mesh) == before


def test_unknown_attributes_are_refused_and_nothing_is_written(mesh: SquidMesh) -> None:
    source = finished(mesh)
    before = written(mesh)

    with pytest.raises(TypeError):
        Signal.replay_run(source, reason="typo")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgument) as caught:
        mesh.apply_signal(Signal(SignalType.REPLAY_RUN, run_id=source, signal_id="s-1"))  # type: ignore[arg-type]
    assert caught.value.reason == "replay_run does not take ['signal_id']"
    with pytest.raises(InvalidArgument):
        mesh.apply_signal(Signal(SignalType.REPLAY_RUN))  # no source
    assert written(mesh) == before


def test_sensitive_metadata_is_redacted_in_the_replay_receipt(mesh: SquidMesh) -> None:
    source = finished(mesh)

    replayed = mesh.replay(source, metadata={"api_key": "sk-live", "note": "ok"})

    receipt = mesh.get_run(replayed.run_id).command_history[0]
    assert receipt["metadata"]["note"] == "ok"
    assert "sk-live" not in str(receipt)


@pytest.mark.shared_journal
def test_a_replay_under_a_changed_definition_is_refused_and_writes_nothing(
    open_mesh: OpenMesh,
) -> None:
    source = finished(open_mesh())

    class ChangedSequential(Sequential):
        """The same workflow name, redeployed with one more step."""

        name = Sequential.name
        extra = step(Ship)
        transitions = [
            transition(Sequential.reserve, to=Sequential.charge),
            transition(Sequential.charge, to=Sequential.ship),
            transition(Sequential.ship, to=extra),
            transition(extra, to=COMPLETE),
        ]

    redeployed = open_mesh(workflows=[ChangedSequential])
    before = written(redeployed)

    with pytest.raises(DefinitionMismatch) as raised:
        redeployed.replay(source)

    assert raised.value.code == "incompatible_workflow_definition"
    assert written(redeployed) == before


class EchoSchedule(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"seen_schedule": ctx.schedule})


class NightlyEcho(Workflow):
    triggers = [cron("nightly", "0 21 * * *", idempotency=CronIdempotency.RETURN_EXISTING_RUN)]
    echo = step(EchoSchedule)
    transitions = [transition(echo, to=COMPLETE)]


def test_a_replayed_cron_run_keeps_its_window_but_not_the_schedule_key(mesh: SquidMesh) -> None:
    window = {"start_at": "2026-03-01T20:00:00Z", "end_at": "2026-03-01T21:00:00Z"}
    started = mesh.start_cron(NightlyEcho, "nightly", intended_window=window)
    mesh.drain(owner_id="w")

    replayed = mesh.replay(started.snapshot.run_id)
    mesh.drain(owner_id="w")

    seen = mesh.inspect_run(replayed.run_id).context["seen_schedule"]
    assert seen["intended_window"] == window
    assert "idempotency_key" not in seen and "idempotency" not in seen
