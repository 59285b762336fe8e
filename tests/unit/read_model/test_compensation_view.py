"""`RunSnapshot.compensation` and `definition_source`: a rollback as readers see it."""

from __future__ import annotations

from datetime import timedelta

from read_model_builders import SAGA_POLICY, T0, Harness, saga_spec

from squidmesh_es.domain import Runnable, TerminalStatus
from squidmesh_es.read_model import CompensationView, SnapshotStatus

LATER = T0 + timedelta(minutes=5)


def test_a_run_that_never_rolled_back_has_no_compensation_view() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize")

    assert h.snapshot().compensation is None


def test_a_rollback_in_progress_names_the_failure_and_what_is_left_latest_first() -> None:
    h = Harness(saga_spec())
    h.rolling_back()

    snapshot = h.snapshot()

    view = snapshot.compensation
    assert snapshot.status is SnapshotStatus.RUNNING
    assert isinstance(view, CompensationView)
    assert view.failed_step == "capture"
    assert view.failure["code"] == "step_failed" and view.failure["step"] == "capture"
    assert (view.compensated, view.failed) == ([], [])
    # The callback in flight first, then what the rollback undoes next; notify has none.
    assert view.pending == ["authorize", "reserve"]
    assert view.abandoned == [] and view.in_flight == []


def test_a_callback_attempt_names_the_step_it_undoes() -> None:
    h = Harness(saga_spec())
    h.rolling_back()

    snapshot = h.snapshot()

    (visible,) = snapshot.visible_attempts
    assert visible.step == "compensate:authorize"
    assert visible.compensation == {"step": "authorize", "runnable_key": f"{h.run.id}:authorize:1"}
    assert snapshot.planned_runnables[-1].compensation == visible.compensation
    assert visible.dynamic is None


def test_finished_callbacks_are_compensated_or_failed_in_the_order_they_ran() -> None:
    h = Harness(saga_spec())
    h.callback(h.rolling_back())
    h.callback(h.compensate("reserve", "capture"), outcome="error")
    h.run.end(TerminalStatus.FAILED, now=T0, error={"code": "step_failed"})

    view = h.snapshot().compensation

    assert view is not None
    assert view.compensated == ["authorize"] and view.failed == ["reserve"]
    assert view.pending == [] and view.abandoned == []


def test_a_deferred_callback_is_still_pending_not_failed() -> None:
    h = Harness(saga_spec())
    key = h.rolling_back()
    h.claim(key)
    h.complete(key)
    h.apply(key, outcome="deferred", error={"code": "deferred"})
    planned = h.run.planned[key]
    again = Runnable.from_state(
        {**planned, "runnable_key": f"{key}:deferred:1", "visible_at": LATER}
    )
    h.run.plan([again], now=T0)
    h.schedule(again.runnable_key)

    view = h.snapshot().compensation

    assert view is not None
    assert view.failed == [] and view.compensated == []
    assert view.pending == ["authorize", "reserve"]


def test_a_cancelled_rollback_leaves_the_rest_abandoned() -> None:
    h = Harness(saga_spec())
    h.rolling_back()
    h.run.end(TerminalStatus.CANCELLED, now=T0)

    view = h.snapshot().compensation

    assert view is not None
    assert view.pending == [] and view.abandoned == ["authorize", "reserve"]


def test_work_planned_before_the_rollback_is_in_flight_until_applied() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize")
    h.dispatch("notify", at=LATER, recovery=SAGA_POLICY["notify"])  # a sibling branch
    h.step_failed("capture", recovery=SAGA_POLICY["capture"])
    h.compensate("authorize", "capture")

    view = h.snapshot().compensation

    assert view is not None and view.in_flight == ["notify"]


def test_a_built_in_still_ahead_is_not_work_the_rollback_waits_for() -> None:
    # A wait, log, pause or approval step carries no recovery policy: it runs nothing, so
    # the engine ends the rollback without it (a worker step carries one).
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize")
    h.plan("review", at=LATER)  # e.g. an approval the run would have stopped at
    h.step_failed("capture", recovery=SAGA_POLICY["capture"])
    h.compensate("authorize", "capture")

    view = h.snapshot().compensation

    assert view is not None and view.in_flight == []


def test_a_step_that_completed_twice_is_undone_once() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize")
    again = h.dispatch("reserve", 2, recovery=SAGA_POLICY["reserve"])  # a loop came back
    h.claim(again)
    h.complete(again)
    h.apply(again)
    h.step_failed("capture", recovery=SAGA_POLICY["capture"])
    h.callback(h.compensate("reserve", "capture"))

    view = h.snapshot().compensation

    assert view is not None
    assert view.compensated == ["reserve"] and view.pending == ["authorize"]


def test_the_definition_source_tells_a_stored_runtime_spec_from_a_workflow_class() -> None:
    assert Harness(saga_spec()).snapshot().definition_source == "workflow"
    assert Harness(saga_spec(), runtime_spec=True).snapshot().definition_source == "runtime_spec"
