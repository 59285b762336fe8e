"""Replays of finished runs and child runs started by steps."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import InvalidReplaySource, RunTerminal, StaleClaim, UnsafeReplay
from squidmesh_es.runtime import WorkflowRegistry
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

from engine_workflows import CALLS, Notifying, Parent, Sequential


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def test_replay_starts_a_fresh_run_from_the_source_input(mesh: SquidMesh) -> None:
    source = mesh.start(Sequential, {"order_id": "o1", "amount": 7}).run_id
    mesh.drain(owner_id="w")

    replayed = mesh.replay(source)
    again = mesh.replay(source)
    mesh.drain(owner_id="w")

    assert again.run_id == replayed.run_id  # same default key: the same replay
    run = mesh.get_run(replayed.run_id)
    assert run.replayed_from_run_id == str(source)
    assert run.input == {"order_id": "o1", "amount": 7}
    assert run.command_history[0]["signal_type"] == "replay_run"
    assert mesh.get_run(source).terminal_status == "completed"
    assert run.terminal_status == "completed"
    assert mesh.replay(source, idempotency_key="second").run_id != replayed.run_id


def test_replay_is_refused_over_irreversible_steps_unless_allowed_exactly(
    mesh: SquidMesh,
) -> None:
    source = mesh.start(Notifying, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")

    with pytest.raises(UnsafeReplay) as refused:
        mesh.replay(source)
    assert refused.value.blocking_steps == ["notify"]
    with pytest.raises(UnsafeReplay):
        mesh.replay(source, allow_irreversible=1)  # type: ignore[arg-type]
    assert mesh.replay(source, allow_irreversible=True).replayed_from_run_id == str(source)


def test_replay_needs_the_source_workflow(mesh: SquidMesh) -> None:
    source = mesh.start(Sequential, {"order_id": "o1"}).run_id
    mesh.workflows = WorkflowRegistry()

    with pytest.raises(InvalidReplaySource) as refused:
        mesh.replay(source)
    assert refused.value.reason == "workflow"


def test_replay_refuses_a_run_that_carries_its_own_definition(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    mesh.register(Sequential)
    spec = Sequential.to_spec()
    run = WorkflowRun.start(
        run_id=uuid4(),
        workflow=Sequential.name,
        trigger="place",
        input={"order_id": "o1", "amount": 10},
        queue="default",
        definition_fingerprint=spec.fingerprint,
        spec=spec.to_dict(),
        now=clock.now(),
    )
    mesh.save(run)

    with pytest.raises(InvalidReplaySource) as refused:
        mesh.replay(run.run_id, allow_irreversible=True)
    assert refused.value.code == "invalid_replay_source"
    assert refused.value.reason == "runtime_spec"


def test_a_step_starts_one_child_run_linked_both_ways(mesh: SquidMesh) -> None:
    parent_id = mesh.start(Parent).run_id
    mesh.execute_next(owner_id="w")

    parent = mesh.get_run(parent_id)
    [link] = parent.child_runs
    child = mesh.get_run(link["child_run_id"])
    assert parent.terminal_status == "completed"
    assert parent.context["child_run_id"] == str(child.run_id)
    assert link["child_key"] == "ship-1" and link["origin"]["step"] == "spawn"
    assert child.start_context["parent"]["run_id"] == str(parent_id)
    mesh.drain(owner_id="w")
    assert mesh.get_run(child.run_id).terminal_status == "completed"


def _context_of(run_id: str, step: str) -> StepContext:
    key = f"{run_id}:{step}:1"
    return StepContext(
        run_id=UUID(run_id),
        workflow=Parent.name,
        step=step,
        attempt=1,
        runnable_key=key,
        idempotency_key=key,
    )


def test_a_stale_parent_context_cannot_start_a_child(mesh: SquidMesh) -> None:
    parent_id = mesh.start(Parent).run_id
    mesh.execute_next(owner_id="w")  # spawn ran and its result was applied
    version = mesh.get_run(parent_id).version

    with pytest.raises(StaleClaim):
        mesh.start_child_run(
            _context_of(parent_id, "spawn"), Sequential, {"order_id": "late"}, child_key="late"
        )
    assert mesh.get_run(parent_id).version == version
    assert len(mesh.get_run(parent_id).child_runs) == 1


def test_an_ended_parent_cannot_start_a_child(mesh: SquidMesh) -> None:
    parent_id = mesh.start(Parent).run_id  # spawn is planned, not run
    mesh.cancel(parent_id)
    version = mesh.get_run(parent_id).version

    with pytest.raises(RunTerminal):
        mesh.start_child_run(
            _context_of(parent_id, "spawn"), Sequential, {"order_id": "c"}, child_key="late"
        )
    assert mesh.get_run(parent_id).version == version
    assert mesh.get_run(parent_id).child_runs == []


class SpawnThenRetry(Step):
    """Starts its child, then fails its first attempt after doing so."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        child = ctx.start_child_run(Sequential, {"order_id": "child"}, child_key="ship-1")
        if ctx.attempt == 1:
            return Retry({"code": "crashed_after_starting_the_child"})
        return Ok({"child_run_id": str(child.run_id)})


class RetriedParent(Workflow):
    triggers = [manual("go")]

    spawn = step(SpawnThenRetry, retry=RetryPolicy(max_attempts=2))
    transitions = [transition(spawn, to=COMPLETE)]


def test_a_retried_parent_step_gets_the_same_child(mesh: SquidMesh) -> None:
    parent_id = mesh.start(RetriedParent).run_id
    mesh.drain(owner_id="w")

    parent = mesh.get_run(parent_id)
    [link] = parent.child_runs
    assert parent.terminal_status == "completed"
    assert parent.context["child_run_id"] == link["child_run_id"]
    assert link["origin"]["attempt"] == 1  # recorded once, by the attempt that started it
    assert mesh.get_run(link["child_run_id"]).terminal_status == "completed"


class SpawnOnItsOwnQueue(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        child = ctx.start_child_run(
            Sequential, {"order_id": "bulk"}, child_key="bulk-1", queue="children"
        )
        return Ok({"child_run_id": str(child.run_id)})


class ParentOfBulkWork(Workflow):
    triggers = [manual("go")]

    spawn = step(SpawnOnItsOwnQueue)
    transitions = [transition(spawn, to=COMPLETE)]


def test_a_child_may_run_on_its_own_queue(mesh: SquidMesh) -> None:
    parent_id = mesh.start(ParentOfBulkWork).run_id
    mesh.drain(owner_id="w")

    [link] = mesh.get_run(parent_id).child_runs
    child = mesh.inspect_run(link["child_run_id"])
    assert child.queue == "children"
    assert [a.step for a in child.visible_attempts] == ["reserve"]
    assert mesh.drain(owner_id="w") == 0  # the default queue's workers never see it

    assert mesh.drain(owner_id="bulk", queue="children") == 3
    assert mesh.inspect_run(child.run_id).terminal_status == "completed"


def test_operators_see_lineage_both_ways_without_the_child_key(mesh: SquidMesh) -> None:
    from squidmesh_es import redact

    parent_id = mesh.start(Parent).run_id
    mesh.execute_next(owner_id="w")
    [link] = mesh.get_run(parent_id).child_runs

    parent = redact(mesh.inspect_run(parent_id), "operator")
    child = redact(mesh.inspect_run(link["child_run_id"]), "operator")

    assert parent.child_runs[0]["child_run_id"] == link["child_run_id"]
    assert child.parent_run is not None and child.parent_run["run_id"] == parent_id
    assert parent.child_runs[0]["child_key"] == "[REDACTED]"
    assert child.parent_run["child_key"] == "[REDACTED]"


class SpawnWithMetadata(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        child = ctx.start_child_run(
            Sequential,
            {"order_id": "c"},
            child_key="meta-1",
            metadata={"reason": "split shipment", "api_key": "sk-live"},
        )
        return Ok({"child_run_id": str(child.run_id)})


class ParentWithMetadata(Workflow):
    triggers = [manual("go")]

    spawn = step(SpawnWithMetadata)
    transitions = [transition(spawn, to=COMPLETE)]


def test_a_child_parent_run_carries_the_metadata_given_at_start_child_run(
    mesh: SquidMesh,
) -> None:
    parent_id = mesh.start(ParentWithMetadata).run_id
    mesh.execute_next(owner_id="w")

    [link] = mesh.get_run(parent_id).child_runs
    child = mesh.inspect_run(link["child_run_id"])
    assert child.parent_run is not None
    assert child.parent_run["metadata"] == link["metadata"]
    assert child.parent_run["metadata"]["reason"] == "split shipment"
    assert "sk-live" not in str(child.parent_run)


def test_a_child_run_does_not_wait_behind_a_backlog_of_new_runs(mesh: SquidMesh) -> None:
    parent_id = mesh.start(Parent).run_id
    backlog = mesh.start_many(Sequential, [{"order_id": f"o{n}"} for n in range(20)])
    mesh.execute_next(owner_id="w")  # the parent's step starts the child

    child_id = mesh.get_run(parent_id).child_runs[0]["child_run_id"]
    for _ in range(3):
        mesh.execute_next(owner_id="w")

    assert mesh.get_run(child_id).terminal_status == "completed"
    assert not any(mesh.get_run(r).is_terminal for r in backlog)
