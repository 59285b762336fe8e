"""Built-in steps on every backend: log steps dispatched, input on built-ins, waits in joins."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import (
    COMPLETE,
    LogLevel,
    Outcome,
    Workflow,
    WorkflowSpec,
    approval,
    log,
    manual,
    pause,
    step,
    transition,
    validate_spec,
    wait,
)

from conftest import T0
from engine_workflows import CALLS, Charge, Order, Reserve, Ship

STEP_LOGGER = "squidmesh_es.steps"


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


class OnlyALog(Workflow):
    payload = Order
    triggers = [manual("go")]

    note = log("order received", level=LogLevel.WARNING, input=["order_id"])
    transitions = [transition(note, to=COMPLETE)]


class HeldThenLogged(Workflow):
    payload = Order
    triggers = [manual("go")]

    hold = pause(input={"order": "order_id"})
    note = log("released")
    transitions = [transition(hold, to=note), transition(note, to=COMPLETE)]


class ReviewedThenLogged(Workflow):
    payload = Order
    triggers = [manual("go")]

    review = approval(output="review", input=["order_id", "amount"])
    approved = log("approved")
    rejected = log("rejected", level=LogLevel.WARNING, input={"who": "review.actor"})
    transitions = [
        transition(review, to=approved),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(approved, to=COMPLETE),
        transition(rejected, to=COMPLETE),
    ]


class JoinAfterAWait(Workflow):
    """``ship`` waits for the reservation and for a 2 s cooling-off that starts at once."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    cool_off = wait(timedelta(seconds=2), input=["order_id"])
    ship = step(Ship, after=[reserve, cool_off])


class JoinAfterAWaitAndLaterWork(Workflow):
    """``ship`` waits for a 2 s wait after the reservation, and for the charge after it."""

    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    cool_off = wait(timedelta(seconds=2), after=[reserve])
    charge = step(Charge, after=[reserve])
    ship = step(Ship, after=[cool_off, charge])


def step_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == STEP_LOGGER]


# -- 1. log steps are dispatched ------------------------------------------------------------


def test_a_log_step_is_claimed_and_written_by_a_worker_not_while_planned(
    mesh: SquidMesh, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=STEP_LOGGER):
        started = mesh.start(OnlyALog, {"order_id": "o1"})

        assert started.status == "running" and not started.terminal
        assert [a.step for a in started.visible_attempts] == ["note"]
        assert step_records(caplog) == []

        done = mesh.execute_next(owner_id="logger-1")

    assert done is not None and done.terminal_status == "completed"
    [record] = step_records(caplog)
    assert (record.levelname, record.getMessage()) == ("WARNING", "order received")
    assert record.squidmesh_run_id == started.run_id  # type: ignore[attr-defined]
    assert record.squidmesh_workflow == "OnlyALog"  # type: ignore[attr-defined]
    assert record.squidmesh_step == "note"  # type: ignore[attr-defined]
    history = mesh.inspect_run(started.run_id, include_history=True)
    [applied] = history.applied_runnables
    assert (applied.step, applied.outcome, applied.attempt_number) == ("note", "ok", 1)


def test_resume_leaves_a_following_log_step_to_a_worker(mesh: SquidMesh) -> None:
    run_id = mesh.start(HeldThenLogged, {"order_id": "o1"}).run_id

    resumed = mesh.resume(run_id, actor="ops")

    assert resumed.status == "running"
    assert [a.step for a in resumed.visible_attempts] == ["note"]
    assert mesh.drain(owner_id="w") == 1
    assert mesh.inspect_run(run_id).terminal_status == "completed"


def test_approve_leaves_a_following_log_step_to_a_worker(mesh: SquidMesh) -> None:
    run_id = mesh.start(ReviewedThenLogged, {"order_id": "o1"}).run_id

    approved = mesh.approve(run_id, actor="ana")

    assert [a.step for a in approved.visible_attempts] == ["approved"]
    assert mesh.execute_next(owner_id="w") is not None
    assert mesh.inspect_run(run_id).terminal_status == "completed"


# -- 2. built-ins take input= --------------------------------------------------------------


def test_built_in_steps_accept_input_mappings() -> None:
    data = JoinAfterAWait.to_spec().to_dict()
    data["steps"][1]["input"] = [{"key": "id", "path": ["order_id"]}]

    validate_spec(WorkflowSpec.from_dict(data))
    kinds = {s.name: s.input for s in ReviewedThenLogged.to_spec().steps}
    assert kinds["review"] is not None and kinds["rejected"] is not None


def test_the_mapped_input_of_a_log_step_is_recorded_on_its_attempt(mesh: SquidMesh) -> None:
    started = mesh.start(OnlyALog, {"order_id": "o1", "amount": 5})

    [attempt] = started.visible_attempts
    assert attempt.input == {"order_id": "o1"}


def test_the_mapped_input_of_pause_approval_and_wait_is_recorded(mesh: SquidMesh) -> None:
    held = mesh.start(HeldThenLogged, {"order_id": "o1"})
    reviewed = mesh.start(ReviewedThenLogged, {"order_id": "o2", "amount": 7})
    waiting = mesh.start(JoinAfterAWait, {"order_id": "o3"})

    assert [r.input for r in held.planned_runnables] == [{"order": "o1"}]
    assert [r.input for r in reviewed.planned_runnables] == [{"order_id": "o2", "amount": 7}]
    [cool_off] = [r for r in waiting.planned_runnables if r.step == "cool_off"]
    assert cool_off.input == {"order_id": "o3"}


def test_an_error_route_log_step_reads_the_rejection_through_its_input(mesh: SquidMesh) -> None:
    run_id = mesh.start(ReviewedThenLogged, {"order_id": "o1"}).run_id

    rejected = mesh.reject(run_id, actor="bo", comment="no")

    [attempt] = rejected.visible_attempts
    assert (attempt.step, attempt.input) == ("rejected", {"who": "bo"})


# -- 3. a wait delays the joins that depend on it --------------------------------------------


def test_a_join_after_a_wait_is_scheduled_when_the_wait_is_over(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(JoinAfterAWait, {"order_id": "o1"})
    clock.advance(timedelta(seconds=1))
    mesh.execute_next(owner_id="w")  # the reservation; the wait completed at T0

    snap = mesh.inspect_run(started.run_id)
    assert [(a.step, a.visible_at) for a in snap.scheduled_attempts] == [
        ("ship", T0 + timedelta(seconds=2))
    ]
    assert mesh.execute_next(owner_id="w") is None
    clock.advance(timedelta(seconds=1))
    assert mesh.execute_next(owner_id="w") is not None
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"


def test_the_wait_delay_is_anchored_to_the_wait_not_to_later_prerequisites(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(JoinAfterAWaitAndLaterWork, {"order_id": "o1"})
    mesh.execute_next(owner_id="w")  # reserve at T0: the wait completes at once, charge due
    clock.advance(timedelta(seconds=1))
    mesh.execute_next(owner_id="w")  # charge at T0 + 1 s

    snap = mesh.inspect_run(started.run_id)
    assert [(a.step, a.visible_at) for a in snap.scheduled_attempts] == [
        ("ship", T0 + timedelta(seconds=2))
    ]


def test_a_join_whose_wait_is_long_over_is_visible_at_once(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(JoinAfterAWait, {"order_id": "o1"})
    clock.advance(timedelta(seconds=5))
    mesh.execute_next(owner_id="w")

    snap = mesh.inspect_run(started.run_id)
    assert [a.step for a in snap.visible_attempts] == ["ship"]
