"""Deploys never break runs in flight: each run follows the graph it started with.

A deploy is a new runtime opened on the same journal with changed workflow classes (on
memory, where there is nothing to reopen, the one runtime gets the new code). Runs started
before it finish along their own graph, running today's code for their steps; new runs
take the new graph.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from deploy_helpers import deploy, finish, steps_of
from deploy_workflows import (
    RELEASED,
    ApprovedV1,
    ApprovedV2,
    Charge,
    JoinV1,
    JoinV2,
    Order,
    RefV1,
    RefV2,
    RemovedV1,
    RemovedV2,
    Reserve,
    RetryingV1,
    RetryingV2,
    SagaV1,
    SagaV2,
    SagaV3,
)

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import DefinitionChange
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import (
    COMPLETE,
    Outcome,
    Workflow,
    approval,
    log,
    manual,
    step,
    transition,
)

from conftest import OpenMesh


def test_a_run_paused_at_an_approval_follows_its_own_graph_with_todays_code(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[ApprovedV1])
    run_id = before.start(ApprovedV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")
    assert before.inspect_run(run_id).status == "paused"

    after = deploy(open_mesh, backend, ApprovedV2)
    assert after.inspect_run(run_id).definition_matches is False  # evidence of the change
    after.approve(run_id, actor="ops")
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "completed"
    assert steps_of(after, run_id) == ["reserve", "review", "charge"]  # no notify
    assert run.context["charged"] == "v2"  # the fixed code, found by workflow and step name
    assert steps_of(after, finish(after, ApprovedV2)) == [
        "reserve",
        "review",
        "charge",
        "notify",
    ]


def test_a_run_waiting_in_a_retry_backoff_keeps_its_own_retry_policy(
    open_mesh: OpenMesh, backend: str, clock: ManualClock
) -> None:
    before = open_mesh(workflows=[RetryingV1])
    run_id = before.start(RetryingV1, {"order_id": "o1", "succeed_on": 3}).run_id
    before.drain(owner_id="w1")
    assert before.inspect_run(run_id).reason == "waiting_for_retry"

    after = deploy(open_mesh, backend, RetryingV2)  # no retries, and one more step
    for _ in range(2):
        clock.advance(timedelta(seconds=60))
        after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "completed"
    assert run.context["charged_on_attempt"] == 3  # V2 would have failed it at attempt 2
    assert run.context["by"] == "v2"  # the moved, changed class ran the attempts after it
    assert steps_of(after, run_id) == ["charge"]
    assert steps_of(after, finish(after, RetryingV2)) == ["charge", "notify"]


def test_a_run_mid_dependency_join_joins_along_its_own_graph(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[JoinV1])
    run_id = before.start(JoinV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")  # fetch
    before.execute_next(owner_id="w1")  # one branch; the other is still to run
    assert len(steps_of(before, run_id)) == 2

    after = deploy(open_mesh, backend, JoinV2)  # the join waits for a new audit step
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "completed"
    assert set(steps_of(after, run_id)) == {"fetch", "left", "right", "join"}
    assert (run.context["joined"], run.context["joined_by"]) == (3, "v2")
    assert "audit" in steps_of(after, finish(after, JoinV2))


def test_a_step_renamed_under_its_declared_ref_runs_for_runs_in_flight(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RefV1])
    run_id = before.start(RefV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")

    after = deploy(open_mesh, backend, RefV2)
    after.approve(run_id, actor="ops")
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "completed"
    assert steps_of(after, run_id) == ["reserve", "review", "charge"]
    assert run.context["charged"] == "v2"


def test_a_removed_step_leaves_its_run_waiting_explained_until_it_is_restored(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RemovedV1])
    run_id = before.start(RemovedV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")  # reserve; charge is next

    after = deploy(open_mesh, backend, RemovedV2)
    assert after.drain(owner_id="w2") == 0

    assert not after.inspect_run(run_id).terminal
    explanation = after.explain_run(run_id)
    assert explanation.step == "charge"
    assert "missing from this deploy" in explanation.summary
    assert explanation.next_actions[0] == "deploy_missing_step"
    (missing,) = explanation.details["missing_steps"]  # type: ignore[misc]
    assert missing["run_definition_fingerprint"] == RemovedV1.to_spec().fingerprint  # type: ignore[index]
    assert missing["deploy_definition_fingerprint"] == RemovedV2.to_spec().fingerprint  # type: ignore[index]
    (problem,) = after.check_deploy()
    assert (problem.run_id, problem.reason) == (str(run_id), "missing_steps")
    assert (problem.missing_steps, problem.waiting_steps) == (("charge",), ("charge",))

    restored = deploy(open_mesh, backend, RemovedV1)
    assert restored.check_deploy() == []
    restored.drain(owner_id="w3")
    assert restored.get_run(run_id).terminal_status == "completed"
    assert steps_of(restored, run_id) == ["reserve", "charge"]


class RefGone(Workflow):
    """``ref_order`` deployed without its payment step."""

    name = "ref_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=COMPLETE),
    ]


def test_deploy_check_lists_a_run_at_an_approval_whose_next_step_is_gone(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RefV1])
    run_id = before.start(RefV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")

    unrelated = deploy(open_mesh, backend, ApprovedV1)
    assert unrelated.check_deploy() == []  # a runtime without ref_order is no deploy of it
    after = deploy(open_mesh, backend, RefGone)
    (problem,) = after.check_deploy()

    assert (problem.run_id, problem.reason) == (str(run_id), "missing_steps")
    assert (problem.missing_steps, problem.waiting_steps) == (("charge",), ())


def test_a_removed_step_is_not_claimed_by_a_deploy_without_it_but_by_one_with_it(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RemovedV1])
    run_id = before.start(RemovedV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")
    after = deploy(open_mesh, backend, RemovedV2)
    fresh = after.start(RemovedV2, {"order_id": "o2"}).run_id

    assert after.drain(owner_id="w2") == 1  # the new run's reserve only

    assert after.get_run(fresh).terminal_status == "completed"
    assert not after.get_run(run_id).is_terminal


def test_strict_mode_fails_a_changed_run_and_keeps_both_fingerprints_as_evidence(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[ApprovedV1])
    run_id = before.start(ApprovedV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")

    after = deploy(open_mesh, backend, ApprovedV2, strict=True)
    (problem,) = after.check_deploy()
    assert problem.reason == "incompatible_workflow_definition"
    after.approve(run_id, actor="ops")
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "failed"
    assert run.error is not None and run.error["code"] == "incompatible_workflow_definition"
    details = run.error["details"]
    assert details["persisted_definition_fingerprint"] == ApprovedV1.to_spec().fingerprint
    assert details["current_definition_fingerprint"] == ApprovedV2.to_spec().fingerprint
    evidence = after.explain_run(run_id).evidence
    assert evidence["definition_fingerprint"] == ApprovedV1.to_spec().fingerprint


def test_strict_mode_lets_unchanged_runs_finish(open_mesh: OpenMesh, backend: str) -> None:
    before = open_mesh(workflows=[ApprovedV1])
    run_id = before.start(ApprovedV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")

    after = deploy(open_mesh, backend, ApprovedV1, strict=True)
    after.approve(run_id, actor="ops")
    after.drain(owner_id="w2")

    assert after.get_run(run_id).terminal_status == "completed"


def test_a_definition_is_stored_once_per_fingerprint(mesh: SquidMesh) -> None:
    mesh.register(ApprovedV1)
    first = mesh.start(ApprovedV1, {"order_id": "o1"})
    mesh.start(ApprovedV1, {"order_id": "o2"})

    stored = [
        n.topic
        for n in mesh.recorder.select_notifications(start=1, limit=1000)
        if n.topic.startswith("squidmesh.WorkflowDefinition")
    ]

    assert stored == ["squidmesh.WorkflowDefinition.DefinitionRecorded"]
    spec = mesh.definitions.spec_for("approved_order", first.definition_fingerprint)
    assert spec is not None and spec.to_dict() == ApprovedV1.to_spec().to_dict()


@pytest.mark.parametrize("workflow", [ApprovedV1, ApprovedV2])
def test_a_run_journal_written_before_graphs_were_stored_still_loads_and_runs(
    open_mesh: OpenMesh,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    workflow: type[Workflow],
) -> None:
    """Earlier builds stored no definition: such a run finishes if its workflow is
    unchanged, and is refused (as before) if it changed, since its graph is unknown."""
    before = open_mesh(workflows=[ApprovedV1])
    monkeypatch.setattr(before.definitions, "prepare", lambda spec: None)
    run_id = before.start(ApprovedV1, {"order_id": "o1"}).run_id
    before.drain(owner_id="w1")
    monkeypatch.undo()

    after = deploy(open_mesh, backend, workflow)
    reasons = [problem.reason for problem in after.check_deploy()]
    after.approve(run_id, actor="ops")
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    if workflow is ApprovedV1:
        assert reasons == []
        assert run.terminal_status == "completed"
    else:
        assert reasons == ["incompatible_workflow_definition"]
        assert run.terminal_status == "failed"
        assert run.error is not None and run.error["code"] == "incompatible_workflow_definition"


def test_strict_mode_is_read_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "SQUIDMESH_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}",
        "SQUIDMESH_ON_DEFINITION_CHANGE": "fail",
    }

    with SquidMesh.from_env(environ) as mesh:
        assert mesh.on_definition_change is DefinitionChange.FAIL


def test_an_unknown_definition_change_policy_is_refused_before_anything_is_created(
    tmp_path: Path,
) -> None:
    path = tmp_path / "never.db"

    with pytest.raises(InvalidArgument) as refused:
        SquidMesh.open(f"sqlite:///{path}", on_definition_change="migrate")

    assert refused.value.option == "on_definition_change"
    assert not path.exists()


@pytest.mark.shared_journal
def test_two_runtimes_storing_one_new_definition_at_once_store_it_once(
    open_mesh: OpenMesh,
) -> None:
    first = open_mesh(workflows=[ApprovedV2])
    second = open_mesh(workflows=[ApprovedV2])
    second.definitions.prepare(ApprovedV2.to_spec())  # read the store before `first` wrote it

    first.start(ApprovedV2, {"order_id": "o1"})
    started = second.start(ApprovedV2, {"order_id": "o2"})  # its first save conflicts

    assert second.get_run(started.run_id).definition_fingerprint == started.definition_fingerprint
    stored = [
        n.topic
        for n in second.recorder.select_notifications(start=1, limit=1000)
        if n.topic.startswith("squidmesh.WorkflowDefinition")
    ]
    assert stored == ["squidmesh.WorkflowDefinition.DefinitionRecorded"]


def wait_until_terminal(mesh: SquidMesh, run_id: UUID | str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not mesh.get_run(run_id).is_terminal:
        assert time.monotonic() < deadline, "the run did not finish in time"
        time.sleep(0.02)


def test_worker_threads_of_a_deploy_without_the_step_leave_it_to_a_deploy_with_it(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RemovedV1])
    stuck = before.start(RemovedV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")
    without = deploy(open_mesh, backend, RemovedV2)
    fresh = without.start(RemovedV2, {"order_id": "o2"}).run_id

    with without.worker(concurrency=2, owner_id="release-2"):
        wait_until_terminal(without, fresh)  # claims went past the attempt it cannot run
    assert not without.get_run(stuck).is_terminal

    restored = deploy(open_mesh, backend, RemovedV1)
    with restored.worker(concurrency=2, owner_id="release-3"):
        wait_until_terminal(restored, stuck)
    assert restored.get_run(stuck).terminal_status == "completed"


def test_a_failing_run_compensates_along_its_own_graph_with_todays_callback(
    open_mesh: OpenMesh, backend: str
) -> None:
    RELEASED.clear()
    before = open_mesh(workflows=[SagaV1])
    run_id = before.start(SagaV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")  # reserve

    after = deploy(open_mesh, backend, SagaV2)
    after.drain(owner_id="w2")

    run = after.get_run(run_id)
    assert run.terminal_status == "failed"
    assert run.error is not None
    assert run.error["compensation"] == {"compensated": ["reserve"], "failed": []}
    assert RELEASED == ["v2"]


def test_a_compensation_missing_from_a_deploy_waits_until_one_has_it(
    open_mesh: OpenMesh, backend: str
) -> None:
    RELEASED.clear()
    before = open_mesh(workflows=[SagaV1])
    run_id = before.start(SagaV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")  # reserve

    without = deploy(open_mesh, backend, SagaV3)
    without.drain(owner_id="w2")  # charge fails; the callback its graph names is not here

    assert not without.get_run(run_id).is_terminal
    assert without.explain_run(run_id).step == "compensate:reserve"
    (problem,) = without.check_deploy()
    assert problem.waiting_steps == ("compensate:reserve",)
    restored = deploy(open_mesh, backend, SagaV2)
    restored.drain(owner_id="w3")
    assert restored.get_run(run_id).terminal_status == "failed"
    assert RELEASED == ["v2"]


class ChargeOnly(Workflow):
    """``removed_order`` without the step its runs in flight have already done."""

    name = "removed_order"
    payload = Order
    triggers = [manual("place")]

    charge = step(Charge)
    transitions = [transition(charge, to=COMPLETE)]


def test_deploy_check_ignores_steps_a_run_has_left_behind(
    open_mesh: OpenMesh, backend: str
) -> None:
    before = open_mesh(workflows=[RemovedV1])
    run_id = before.start(RemovedV1, {"order_id": "o1"}).run_id
    before.execute_next(owner_id="w1")  # reserve, which the new code drops

    after = deploy(open_mesh, backend, ChargeOnly)

    assert after.check_deploy() == []
    after.drain(owner_id="w2")
    assert after.get_run(run_id).terminal_status == "completed"
