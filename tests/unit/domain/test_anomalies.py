"""Histories written around the command methods load, and their bad facts become anomalies."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from squidmesh_es.domain import (
    AttemptStatus,
    DispatchQueue,
    ManualKind,
    RunStatus,
    TerminalStatus,
    WorkflowRun,
)

from domain_builders import LEASE, T0, claim, new_queue, new_run, schedule, sha


def reasons(aggregate: DispatchQueue | WorkflowRun) -> list[str]:
    return [a["reason"] for a in aggregate.anomalies]


def test_stale_heartbeat_is_an_anomaly_and_leaves_the_lease() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    queue.trigger_event(
        DispatchQueue.AttemptHeartbeat,
        runnable_key=key,
        claim_id="c1",
        claim_token_hash=sha("forged"),
        lease_until=T0 + timedelta(hours=1),
        timestamp=T0,
    )

    assert reasons(queue) == ["stale_claim"]
    assert queue.attempt(key).lease_until == T0 + LEASE  # type: ignore[union-attr]
    assert queue.anomalies[0]["runnable_key"] == key and queue.anomaly_count == 1


def test_completion_for_an_unknown_attempt_is_an_anomaly() -> None:
    queue = new_queue()

    queue.trigger_event(
        DispatchQueue.AttemptCompleted,
        runnable_key="ghost",
        claim_id="c",
        claim_token_hash=sha("t"),
        result={},
        timestamp=T0,
    )

    assert reasons(queue) == ["unknown_runnable_intent"]
    assert queue.counters["completed"] == 0


def test_active_takeover_written_directly_is_an_anomaly() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    queue.trigger_event(
        DispatchQueue.AttemptClaimed,
        runnable_key=key,
        claim_id="c2",
        claim_token_hash=sha("t2"),
        owner_id="w2",
        lease_until=T0 + LEASE,
        timestamp=T0 + timedelta(seconds=1),
    )

    assert reasons(queue) == ["active_claim"]
    assert queue.attempt(key).owner_id == "w1"  # type: ignore[union-attr]


def test_manual_fact_after_terminal_is_an_anomaly() -> None:
    run = new_run()
    run.end(TerminalStatus.FAILED, now=T0)

    run.trigger_event(
        WorkflowRun.ManualStepPaused, step="hold", kind="pause", metadata={}, timestamp=T0
    )
    run.trigger_event(
        WorkflowRun.ManualStepResolved,
        step="hold",
        action="resumed",
        result={},
        metadata={},
        timestamp=T0,
    )

    assert reasons(run) == ["terminal_run", "terminal_run"]
    assert run.status == RunStatus.FAILED and run.manual_state is None


def test_second_active_pause_is_an_anomaly() -> None:
    run = new_run()
    run.trigger_event(
        WorkflowRun.ManualStepPaused, step="a", kind="pause", metadata={}, timestamp=T0
    )

    run.trigger_event(
        WorkflowRun.ManualStepPaused, step="b", kind="approval", metadata={}, timestamp=T0
    )

    assert reasons(run) == ["active_manual_step"]
    assert run.manual_state is not None and run.manual_state["step"] == "a"


def test_stale_manual_resolution_and_unplanned_apply_are_anomalies() -> None:
    run = new_run()

    run.trigger_event(
        WorkflowRun.ManualStepResolved,
        step="x",
        action="approved",
        result={},
        metadata={},
        timestamp=T0,
    )
    run.trigger_event(
        WorkflowRun.RunnableApplied,
        runnable_key="nope",
        outcome="ok",
        result={},
        error=None,
        transition=None,
        timestamp=T0,
    )

    assert reasons(run) == ["stale_manual_resolution", "unknown_runnable_intent"]
    assert run.applied == {}


def test_conflicting_schedule_written_directly_keeps_the_first_intent() -> None:
    queue = new_queue()
    key = schedule(queue)
    attempt = queue.attempt(key)
    assert attempt is not None

    queue.trigger_event(
        DispatchQueue.AttemptScheduled,
        run_id=attempt.run_id,
        runnable_key=key,
        idempotency_key=key,
        attempt_number=1,
        step="charge",
        visible_at=T0 + timedelta(minutes=5),
        metadata=None,
        timestamp=T0,
    )

    assert reasons(queue) == ["conflicting_runnable_intent"]
    assert queue.attempt(key).visible_at == T0  # type: ignore[union-attr]
    assert queue.attempt(key).status is AttemptStatus.AVAILABLE  # type: ignore[union-attr]


def test_failure_written_over_an_existing_retry_key_never_overwrites_it() -> None:
    queue = new_queue()
    first = schedule(queue, step="charge", attempt=1)
    second = schedule(queue, run_id=UUID(first.split(":")[0]), step="charge", attempt=2)
    claim(queue, second, token="t2", claim_id="c2")
    claim(queue, first)

    queue.trigger_event(
        DispatchQueue.AttemptFailed,
        runnable_key=first,
        claim_id="c1",
        claim_token_hash=sha("t1"),
        error={"e": 1},
        retry_runnable_key=second,
        retry_visible_at=T0,
        timestamp=T0,
    )

    assert reasons(queue) == ["conflicting_runnable_intent"]
    assert queue.attempt(second).status is AttemptStatus.CLAIMED  # type: ignore[union-attr]
    assert queue.attempt(first).status is AttemptStatus.FAILED  # type: ignore[union-attr]


def test_resolution_of_the_wrong_kind_written_directly_is_stale() -> None:
    run = new_run()
    run.pause("hold", kind=ManualKind.PAUSE, now=T0)

    run.trigger_event(
        WorkflowRun.ManualStepResolved,
        step="hold",
        action="approved",
        result={},
        metadata={},
        timestamp=T0,
    )

    assert reasons(run) == ["stale_manual_resolution"]
    assert run.manual_state is not None
