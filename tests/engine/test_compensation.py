"""Saga compensation on every backend: callbacks undo completed steps in reverse order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidDynamicWork, RunTerminal
from squidmesh_es.runtime._execution import claim_attempts, run_claimed, settle
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh
from saga_workflows import (
    FORWARD,
    UNDONE,
    SagaAwaitingApproval,
    SagaCheckout,
    SagaFanOut,
    SagaWithAuditAnHourAway,
    SagaWithDeferringRelease,
    SagaWithErrorRoute,
    SagaWithFailingVoid,
    SagaWithLaterAudit,
    SagaWithUncompensatableStep,
)
from spec_actions import digest_registry


@pytest.fixture(autouse=True)
def _fresh_undone() -> None:
    UNDONE.clear()
    FORWARD.clear()


def short_keys(keys: list[str]) -> list[str]:
    return [key.split(":", 1)[1] for key in keys]


def test_exhausted_retries_undo_completed_steps_in_reverse_completion_order(
    mesh: SquidMesh,
) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o1"})

    assert mesh.drain() == 6

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "failed"
    assert [name for name, _ in UNDONE] == ["VoidPaymentAuthorization", "ReleaseInventory"]
    assert short_keys(snap.planned_runnable_keys) == [
        "reserve_inventory:1",
        "authorize_payment:1",
        "capture_payment:1",
        "capture_payment:2",
        "compensate:authorize_payment:1",
        "compensate:reserve_inventory:1",
    ]
    assert snap.error is not None
    assert snap.error["step"] == "capture_payment"
    assert snap.error["reason"]["code"] == "retries_exhausted"
    assert snap.error["compensation"] == {
        "compensated": ["authorize_payment", "reserve_inventory"],
        "failed": [],
    }
    # Callback outputs merge into the context next to the forward outputs.
    assert snap.context["authorization_voided"] is True
    assert snap.context["inventory_released"] is True


def test_a_callback_gets_the_completed_step_and_the_failure_that_started_the_rollback(
    mesh: SquidMesh,
) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o2", "amount": 7})
    mesh.drain()

    void_input = UNDONE[0][1]
    step = void_input["step"]
    assert step["name"] == "authorize_payment"
    assert step["runnable_key"] == f"{started.run_id}:authorize_payment:1"
    assert step["input"]["order_id"] == "o2" and step["input"]["amount"] == 7
    assert step["output"] == {"authorization": "auth-o2"}  # unwrapped from its output key
    assert isinstance(step["applied_at"], str)
    assert void_input["failure"]["code"] == "step_failed"
    assert void_input["failure"]["step"] == "capture_payment"


def test_compensation_is_visible_while_it_runs(mesh: SquidMesh) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o3"})
    for _ in range(4):  # reserve, authorize, capture twice
        mesh.execute_next(owner_id="w")

    snap = mesh.inspect_run(started.run_id)
    assert snap.status == "running"
    assert not snap.terminal
    pending = [r for r in snap.planned_runnables if not r.applied]
    assert [r.step for r in pending] == ["compensate:authorize_payment"]
    assert pending[0].compensation == {
        "step": "authorize_payment",
        "runnable_key": f"{started.run_id}:authorize_payment:1",
    }
    assert [a.step for a in snap.visible_attempts] == ["compensate:authorize_payment"]


def test_a_failed_callback_is_recorded_and_the_rollback_goes_on(mesh: SquidMesh) -> None:
    started = mesh.start(SagaWithFailingVoid, {"order_id": "o4"})
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert [name for name, _ in UNDONE] == ["FailingVoid", "ReleaseInventory"]
    failed = {a.runnable_key: a for a in snap.applied_runnables}[
        f"{started.run_id}:compensate:authorize_payment:1"
    ]
    assert failed.outcome == "error"
    assert failed.error is not None and failed.error["code"] == "step_error"
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["compensation"] == {
        "compensated": ["reserve_inventory"],
        "failed": ["authorize_payment"],
    }


def test_a_callback_may_defer_without_losing_its_place(mesh: SquidMesh, clock: ManualClock) -> None:
    started = mesh.start(SagaWithDeferringRelease, {"order_id": "o5"})
    mesh.drain()

    waiting = mesh.inspect_run(started.run_id)
    assert waiting.status == "running"
    assert waiting.reason == "deferred_continuation"

    clock.advance(timedelta(minutes=5))
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert [name for name, _ in UNDONE] == ["DeferringRelease", "DeferringRelease"]
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["compensation"] == {"compensated": ["reserve_inventory"], "failed": []}


def test_an_error_route_is_the_recovery_so_nothing_is_compensated(mesh: SquidMesh) -> None:
    started = mesh.start(SagaWithErrorRoute, {"order_id": "o6"})
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert UNDONE == []
    assert not any(k.startswith("compensate:") for k in short_keys(snap.planned_runnable_keys))


def test_only_steps_declaring_a_callback_are_compensated(mesh: SquidMesh) -> None:
    started = mesh.start(SagaWithUncompensatableStep, {"order_id": "o7"})
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert [u[1]["step"]["name"] for u in UNDONE] == ["reserve_inventory"]
    assert snap.error is not None
    assert snap.error["compensation"]["compensated"] == ["reserve_inventory"]


def test_a_branch_still_pending_when_a_sibling_fails_finishes_and_is_undone_too(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(SagaFanOut, {"order_id": "o8"})
    mesh.drain()

    # The capture failed; the authorization is undone; the reservation has not run yet.
    halfway = mesh.inspect_run(started.run_id)
    assert [u[1]["step"]["name"] for u in UNDONE] == ["authorize_payment"]
    assert not halfway.terminal

    clock.advance(timedelta(hours=1))
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert [u[1]["step"]["name"] for u in UNDONE] == ["authorize_payment", "reserve_inventory"]
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["compensation"]["compensated"] == [
        "authorize_payment",
        "reserve_inventory",
    ]


def test_cancelling_during_the_rollback_fences_the_remaining_callbacks(mesh: SquidMesh) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o9"})
    for _ in range(5):  # forward steps, then the first callback
        mesh.execute_next(owner_id="w")

    mesh.cancel(started.run_id, actor="ops", reason="manual cleanup")

    assert mesh.drain() == 0
    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "cancelled"
    assert [name for name, _ in UNDONE] == ["VoidPaymentAuthorization"]


@pytest.mark.shared_journal
def test_a_restarted_runtime_continues_the_rollback_from_the_journal(
    open_mesh: OpenMesh,
) -> None:
    first = open_mesh()
    started = first.start(SagaCheckout, {"order_id": "o10"})
    for _ in range(5):  # forward steps, then the first callback
        first.execute_next(owner_id="w")
    first.close()

    second = open_mesh(workflows=[SagaCheckout])
    report = second.recover()
    assert report.scheduled == []  # the next callback was scheduled in the same commit
    assert second.drain() == 1

    snap = second.inspect_run(started.run_id)
    assert [name for name, _ in UNDONE] == ["VoidPaymentAuthorization", "ReleaseInventory"]
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["compensation"]["compensated"] == ["authorize_payment", "reserve_inventory"]


def test_a_callback_settled_twice_is_applied_once(mesh: SquidMesh, clock: ManualClock) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o11"})
    for _ in range(4):  # forward steps; the first callback is now visible
        mesh.execute_next(owner_id="w")
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=timedelta(minutes=1), now=clock.now()
    )
    finished = run_claimed(mesh, claim)
    assert claim.attempt.step == "compensate:authorize_payment"

    first, _ = settle(mesh, "default", [finished], now=clock.now())
    version = mesh.get_run(started.run_id).version
    again, _ = settle(mesh, "default", [finished], now=clock.now())

    assert first.committed and not again.committed and not again.refused
    assert mesh.get_run(started.run_id).version == version
    keys = short_keys(mesh.inspect_run(started.run_id).planned_runnable_keys)
    assert keys.count("compensate:reserve_inventory:1") == 1  # the next callback, planned once


# -- a rollback beside manual boundaries and built-ins ----------------------------------------


def failing_node_beside_the_approval(mesh: SquidMesh) -> str:
    """Reserve, stop at the approval, and fail a node scheduled from the reservation."""
    run_id = mesh.start(SagaAwaitingApproval, {"order_id": "o12"}).run_id
    mesh.execute_next(owner_id="w")
    assert mesh.inspect_run(run_id).status == "paused"
    origin = {"runnable_key": f"{run_id}:reserve_inventory:1", "step": "reserve_inventory"}
    mesh.schedule_dynamic_work(
        run_id,
        {
            "dynamic_key": "notify",
            "origin": {**origin, "attempt": 1},
            "nodes": [{"id": "notify_warehouse", "action": "digest.broken"}],
        },
        action_registry=digest_registry(),
    )
    mesh.drain()  # the node fails for good; the release defers for five minutes
    return run_id


def test_a_rollback_at_an_approval_ends_the_run_once_the_callbacks_are_done(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    mesh = open_mesh(action_registry=digest_registry())
    run_id = failing_node_beside_the_approval(mesh)

    clock.advance(timedelta(minutes=5))
    mesh.drain()

    snap = mesh.inspect_run(run_id)
    assert snap.terminal_status == "failed"  # not left paused at an approval that leads on
    assert snap.manual_state is None
    assert snap.error is not None
    assert snap.error["compensation"] == {"compensated": ["reserve_inventory"], "failed": []}
    with pytest.raises(RunTerminal):
        mesh.approve(run_id, actor="ops")
    assert FORWARD == []


def test_an_approval_given_during_a_rollback_is_recorded_and_leads_nowhere(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    mesh = open_mesh(action_registry=digest_registry())
    run_id = failing_node_beside_the_approval(mesh)

    approved = mesh.approve(run_id, actor="ops")

    assert [r.step for r in approved.planned_runnables if not r.applied] == [
        "compensate:reserve_inventory"
    ]
    clock.advance(timedelta(minutes=5))
    mesh.drain()
    snap = mesh.inspect_run(run_id)
    assert FORWARD == []  # ship never ran after its reservation was released
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["compensation"] == {"compensated": ["reserve_inventory"], "failed": []}


def test_a_built_in_that_comes_due_during_a_rollback_plans_nothing(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(SagaWithLaterAudit, {"order_id": "o13"})
    mesh.drain()  # the capture fails; the release defers for five minutes

    clock.advance(timedelta(minutes=1))
    mesh.drain()  # the log step comes due in the middle of the rollback
    clock.advance(timedelta(minutes=5))
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert FORWARD == []
    assert "audit" not in {r.step for r in snap.planned_runnables}
    assert snap.terminal_status == "failed"


def test_built_ins_still_ahead_do_not_hold_a_finished_rollback_open(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(SagaWithAuditAnHourAway, {"order_id": "o14"})
    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "failed"  # not an hour later, when the log comes due
    assert snap.error is not None
    assert snap.error["compensation"] == {"compensated": ["reserve_inventory"], "failed": []}
    clock.advance(timedelta(hours=2))
    assert mesh.drain() == 0
    assert FORWARD == []


def test_a_rolling_back_run_takes_no_new_executable_work(mesh: SquidMesh) -> None:
    started = mesh.start(SagaCheckout, {"order_id": "o12"})
    for _ in range(4):  # forward steps; the rollback has begun
        mesh.execute_next(owner_id="w")
    proposal = {
        "dynamic_key": "late_fanout",
        "origin": {
            "runnable_key": f"{started.run_id}:reserve_inventory:1",
            "step": "reserve_inventory",
            "attempt": 1,
        },
        "nodes": [{"id": "late", "action": "digest.deliver", "input": {"chat": "c"}}],
    }
    before = mesh.recorder.max_notification_id()

    with pytest.raises(InvalidDynamicWork) as refused:
        mesh.schedule_dynamic_work(started.run_id, proposal, action_registry=digest_registry())

    assert refused.value.reason == "run_compensating"
    assert mesh.recorder.max_notification_id() == before
    # Recording it for inspection stays possible: it runs nothing.
    assert mesh.record_dynamic_work(started.run_id, proposal).dynamic_work
