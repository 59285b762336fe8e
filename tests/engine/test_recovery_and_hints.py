"""Recovery of partial histories written directly, and the notifier's wakeup hints."""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import uuid4

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.domain import TerminalStatus, WorkflowRun
from squidmesh_es.domain._planner import apply_outcome, plan_entry
from squidmesh_es.runtime import ScheduledAttempt, WorkflowRegistry
from squidmesh_es.runtime._execution import claim_attempts, run_claimed
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import Outcome

from conftest import OpenMesh
from engine_workflows import CALLS, Paused, Sequential, Waiting
from spec_actions import DigestFanout, deliver, digest_registry, fanout


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def test_planned_but_unscheduled_work_is_scheduled(mesh: SquidMesh, clock: ManualClock) -> None:
    mesh.register(Sequential)
    spec = Sequential.to_spec()
    run = WorkflowRun.start(
        run_id=uuid4(),
        workflow=Sequential.name,
        trigger="place",
        input={"order_id": "o1", "amount": 10},
        queue="default",
        definition_fingerprint=spec.fingerprint,
        now=clock.now(),
    )
    plan_entry(spec, run, now=clock.now())
    queue = mesh.get_queue()
    queue.enqueue_run(run.run_id, now=clock.now())
    mesh.save(run, queue)  # crashed before scheduling: planned, queued, no attempt

    report = mesh.recover()
    second = mesh.recover()

    assert report.scheduled == [f"{run.run_id}:reserve:1"]
    assert not second.repaired
    assert mesh.drain(owner_id="w") == 3
    assert mesh.inspect_run(run.run_id).terminal_status == "completed"


def test_a_built_in_planned_for_later_but_never_scheduled_is_scheduled(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(Waiting, {"order_id": "o1"})
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=timedelta(seconds=60), now=clock.now()
    )
    finished = run_claimed(mesh, claim)
    assert finished.outcome is not None
    queue, run = mesh.get_queue(), mesh.get_run(started.run_id)
    queue.complete(
        claim.key,
        claim_id=claim.claim_id,
        claim_token_hash=claim.token_hash,
        result=finished.outcome.output,
        now=clock.now(),
    )
    queue.mark_applied(claim.key, now=clock.now())
    progress = apply_outcome(
        Waiting.to_spec(),
        run,
        claim.key,
        outcome=Outcome.OK,
        output=finished.outcome.output,
        now=clock.now(),
    )
    assert [r.step for r in progress.to_schedule] == ["note"]  # due after the cool-off
    mesh.save(queue, run)  # crashed before scheduling the log step

    report = mesh.recover()

    assert report.scheduled == [f"{started.run_id}:note:1"]
    assert not mesh.recover().repaired
    clock.advance(timedelta(minutes=5))
    mesh.drain(owner_id="w")
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"


def test_a_run_paused_at_a_boundary_has_nothing_to_schedule(mesh: SquidMesh) -> None:
    started = mesh.start(Paused, {"order_id": "o1"})
    mesh.drain(owner_id="w")
    assert mesh.inspect_run(started.run_id).status == "paused"

    assert not mesh.recover().repaired


def test_completed_but_unapplied_results_are_applied(mesh: SquidMesh, clock: ManualClock) -> None:
    started = mesh.start(Sequential, {"order_id": "o1"})
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=timedelta(seconds=60), now=clock.now()
    )
    finished = run_claimed(mesh, claim)
    assert finished.outcome is not None
    queue = mesh.get_queue()
    queue.complete(
        claim.key,
        claim_id=claim.claim_id,
        claim_token_hash=claim.token_hash,
        result=finished.outcome.output,
        now=clock.now(),
    )
    mesh.save(queue)  # crashed after the completion, before applying it

    report = mesh.recover()
    second = mesh.recover()

    assert report.applied == [claim.key]
    assert not second.repaired
    run = mesh.get_run(started.run_id)
    assert claim.key in run.applied
    assert [a.step for a in mesh.get_queue().attempts_of(started.run_id)] == ["charge"]
    mesh.drain(owner_id="w")
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"
    assert [name for name, _ in CALLS] == ["Reserve", "Charge", "Ship"]


def test_unapplied_results_after_one_that_ends_the_run_are_fenced_not_applied(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    mesh = open_mesh(action_registry=digest_registry())
    run_id = mesh.start(DigestFanout, {}).run_id
    mesh.execute_next(owner_id="w")
    nodes = (deliver("a", action="digest.broken"), deliver("b"))
    mesh.schedule_dynamic_work(run_id, fanout(run_id, *nodes), action_registry=digest_registry())
    claims = claim_attempts(
        mesh, "default", owner_id="w", limit=2, lease_for=timedelta(seconds=60), now=clock.now()
    )
    queue = mesh.get_queue()
    for claim in claims:
        finished = run_claimed(mesh, claim)
        assert finished.outcome is not None
        if finished.outcome.output:
            queue.complete(
                claim.key,
                claim_id=claim.claim_id,
                claim_token_hash=claim.token_hash,
                result=finished.outcome.output,
                now=clock.now(),
            )
        else:
            queue.fail(
                claim.key,
                claim_id=claim.claim_id,
                claim_token_hash=claim.token_hash,
                error={"code": "step_error"},
                now=clock.now(),
            )
    mesh.save(queue)  # crashed after both results, before applying either

    report = mesh.recover()  # the first result fails the run; the second is fenced

    assert report.applied == [f"{run_id}:deliver_digest:a:1"]
    run = mesh.get_run(run_id)
    assert run.terminal_status == "failed"
    assert f"{run_id}:deliver_digest:b:1" not in run.applied
    assert not mesh.get_queue().attempts_of(run_id)
    assert not mesh.recover().repaired


def test_an_ended_run_still_open_on_its_queue_is_closed(
    mesh: SquidMesh, clock: ManualClock
) -> None:

    started = mesh.start(Sequential, {"order_id": "o1"})
    run = mesh.get_run(started.run_id)
    run.end(TerminalStatus.CANCELLED, now=clock.now())
    mesh.save(run)  # crashed before fencing the queue

    report = mesh.recover()

    assert report.closed_runs == [str(started.run_id)]
    assert mesh.execute_next(owner_id="w") is None
    assert not mesh.recover().repaired


def test_recovery_skips_runs_of_unregistered_workflows(mesh: SquidMesh, clock: ManualClock) -> None:
    mesh.start(Sequential, {"order_id": "healthy"})  # nothing to repair: not even read
    gap = planned_but_unscheduled(mesh, clock)
    mesh.workflows = WorkflowRegistry()  # a process without this workflow's code

    report = mesh.recover()

    assert report.skipped_runs == [str(gap)]
    assert report.examined_runs == 1


def planned_but_unscheduled(mesh: SquidMesh, clock: ManualClock) -> str:
    mesh.register(Sequential)
    spec = Sequential.to_spec()
    run = WorkflowRun.start(
        run_id=uuid4(),
        workflow=Sequential.name,
        trigger="place",
        input={"order_id": "o1", "amount": 10},
        queue="default",
        definition_fingerprint=spec.fingerprint,
        now=clock.now(),
    )
    plan_entry(spec, run, now=clock.now())
    queue = mesh.get_queue()
    queue.enqueue_run(run.run_id, now=clock.now())
    mesh.save(run, queue)  # crashed before scheduling: planned, queued, no attempt
    return str(run.run_id)


class RecordingNotifier:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[ScheduledAttempt] = []

    def notify_attempt_scheduled(self, attempt: ScheduledAttempt) -> None:
        self.seen.append(attempt)
        if self.fail:
            raise ConnectionError("broker down")


def test_notifier_hint_follows_the_commit_and_is_recorded(open_mesh: OpenMesh) -> None:
    notifier = RecordingNotifier()
    mesh = open_mesh(notifier=notifier)
    if mesh.notifier is not notifier:
        mesh.notifier = notifier

    started = mesh.start(Sequential, {"order_id": "o1"})

    assert [a.runnable_key for a in notifier.seen] == [f"{started.run_id}:reserve:1"]
    [attempt] = mesh.get_queue().attempts_of(started.run_id)
    assert attempt.wakeup_emitted
    mesh.execute_next(owner_id="w")
    assert [a.runnable_key.split(":")[1] for a in notifier.seen] == ["reserve", "charge"]


def test_a_failing_notifier_never_undoes_scheduling(
    open_mesh: OpenMesh, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = open_mesh()
    mesh.notifier = RecordingNotifier(fail=True)

    with caplog.at_level(logging.WARNING):
        started = mesh.start(Sequential, {"order_id": "o1"})

    [attempt] = mesh.get_queue().attempts_of(started.run_id)
    assert not attempt.wakeup_emitted
    assert "wakeup hint" in caplog.text
    assert mesh.drain(owner_id="w") == 3
