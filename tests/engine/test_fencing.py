"""Leases, takeovers, duplicate and late completions, cancellation and stale definitions."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import ConflictingCompletion, ExpiredClaim, RunTerminal
from squidmesh_es.runtime import Finished, WorkflowRegistry
from squidmesh_es.runtime._execution import claim_attempts, run_claimed
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import COMPLETE, StepOutcome, Workflow, step, transition
from squidmesh_es.workflow._runner import OutcomeStatus

from conftest import OpenMesh
from engine_workflows import CALLS, Charge, Reserve, Sequential

LEASE = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def claim_one(mesh: SquidMesh, owner: str, clock: ManualClock) -> Finished:
    [claim] = claim_attempts(
        mesh, "default", owner_id=owner, limit=1, lease_for=LEASE, now=clock.now()
    )
    return run_claimed(mesh, claim)


def stored_events(mesh: SquidMesh, run_id: str) -> list[str]:
    return [type(e).__name__ for e in mesh.events.get(UUID(run_id))]


def test_expired_lease_is_taken_over_and_the_late_completion_changes_nothing(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(Sequential, {"order_id": "o1"})
    stale = claim_one(mesh, "old-owner", clock)
    clock.advance(LEASE)  # a lease ending exactly now is expired

    taken_over = mesh.execute_next(owner_id="new-owner", lease_for=LEASE)
    assert taken_over is not None
    run_version = mesh.get_run(started.run_id).version
    queue_version = mesh.get_queue().version

    [late] = mesh.settle([stale], queue="default")

    assert mesh.get_run(started.run_id).version == run_version
    assert mesh.get_queue().version == queue_version
    assert late.context == {"reservation": "r-o1"}
    assert stored_events(mesh, started.run_id).count("RunnableApplied") == 1


def test_late_completion_is_refused_as_expired(mesh: SquidMesh, clock: ManualClock) -> None:
    from squidmesh_es.runtime._execution import settle

    mesh.start(Sequential, {"order_id": "o1"})
    stale = claim_one(mesh, "old-owner", clock)
    clock.advance(LEASE)

    settled, _ = settle(mesh, "default", [stale], now=clock.now())

    assert isinstance(settled.refused[stale.claim.key], ExpiredClaim)
    assert not settled.committed


def test_duplicate_completion_is_idempotent_and_a_conflicting_one_refused(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    from squidmesh_es.runtime._execution import settle

    started = mesh.start(Sequential, {"order_id": "o1"})
    finished = claim_one(mesh, "w", clock)
    mesh.settle([finished], queue="default")
    version = mesh.get_run(started.run_id).version

    again, _ = settle(mesh, "default", [finished], now=clock.now())
    other = Finished(finished.claim, outcome=StepOutcome(OutcomeStatus.OK, {"reservation": "x"}))
    conflicting, _ = settle(mesh, "default", [other], now=clock.now())

    assert not again.refused and not again.committed
    assert isinstance(conflicting.refused[finished.claim.key], ConflictingCompletion)
    assert mesh.get_run(started.run_id).version == version


def test_cancel_while_a_step_runs_ends_cancelled_and_refuses_its_completion(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(Sequential, {"order_id": "o1"})
    in_hand = claim_one(mesh, "w", clock)

    cancelled = mesh.cancel(started.run_id, actor="ops", reason="customer asked")
    [after] = mesh.settle([in_hand], queue="default")

    assert cancelled.terminal_status == "cancelled"
    assert after.terminal_status == "cancelled"
    assert mesh.execute_next(owner_id="w") is None
    run = mesh.get_run(started.run_id)
    assert run.applied == {}
    assert [c["signal_type"] for c in run.command_history] == ["start_run", "cancel_run"]
    assert run.command_history[1]["actor"] == "ops"


def test_cancel_fences_queued_attempts(mesh: SquidMesh) -> None:
    started = mesh.start(Sequential, {"order_id": "o1"})
    mesh.cancel(started.run_id)

    assert mesh.execute_next(owner_id="w") is None
    assert mesh.get_queue().attempts_of(started.run_id) == []
    assert CALLS == []


def test_cancel_is_idempotent_by_key_and_refused_on_an_ended_run(mesh: SquidMesh) -> None:
    started = mesh.start(Sequential, {"order_id": "o1"})
    mesh.cancel(started.run_id, idempotency_key="c-1")
    version = mesh.get_run(started.run_id).version

    repeat = mesh.cancel(started.run_id, idempotency_key="c-1")

    assert repeat.terminal_status == "cancelled"
    assert mesh.get_run(started.run_id).version == version
    with pytest.raises(RunTerminal):
        mesh.cancel(started.run_id, idempotency_key="c-2")


class ReserveThenCharge(Workflow):
    """Same name as `Sequential`, different steps: a changed definition."""

    name = "Sequential"
    triggers = Sequential.triggers
    payload = Sequential.payload

    reserve = step(Reserve)
    charge = step(Charge)

    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]


def test_in_strict_mode_a_changed_definition_never_runs_and_fails_the_run(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(on_definition_change="fail")
    started = mesh.start(Sequential, {"order_id": "o1"})
    mesh.workflows = WorkflowRegistry([ReserveThenCharge])  # a deploy changed the code

    snap = mesh.execute_next(owner_id="w")

    assert snap is not None and snap.terminal_status == "failed"
    assert CALLS == []
    run = mesh.get_run(started.run_id)
    assert run.error is not None
    assert run.error["code"] == "incompatible_workflow_definition"
    details = run.error["details"]
    assert details["persisted_definition_fingerprint"] == Sequential.to_spec().fingerprint
    assert mesh.execute_next(owner_id="w") is None


def test_workers_only_claim_registered_workflows(mesh: SquidMesh) -> None:
    mesh.start(Sequential, {"order_id": "o1"})
    mesh.workflows = WorkflowRegistry()

    assert mesh.execute_next(owner_id="w") is None
    mesh.workflows = WorkflowRegistry([Sequential])
    assert mesh.execute_next(owner_id="w") is not None


class Echo(Workflow):
    triggers = Sequential.triggers
    payload = Sequential.payload
    reserve = step(Reserve)
    transitions = [transition(reserve, to=COMPLETE)]


def test_claim_ids_and_tokens_are_fresh_per_claim(mesh: SquidMesh, clock: ManualClock) -> None:
    mesh.start(Echo, {"order_id": "a"})
    mesh.start(Echo, {"order_id": "b"})
    claims = claim_attempts(
        mesh, "default", owner_id="w", limit=5, lease_for=LEASE, now=clock.now()
    )

    assert len(claims) == 2
    assert len({c.claim_id for c in claims}) == 2
    assert len({c.claim_token for c in claims}) == 2
    assert all(c.claim_token not in repr(c) for c in claims)
