from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError
from read_model_builders import LEASE, RUN_ID, T0, TOKEN, Harness, transition_spec

from squidmesh_es.domain import AttemptStatus, ManualKind, TerminalStatus, hash_claim_token
from squidmesh_es.read_model import DeadlineStatus, SnapshotReason, SnapshotStatus

LATER = T0 + timedelta(minutes=5)


def test_started_run_with_nothing_planned_is_pending_and_run_started() -> None:
    snapshot = Harness().snapshot()

    assert snapshot.status is SnapshotStatus.PENDING
    assert snapshot.reason is SnapshotReason.RUN_STARTED
    assert snapshot.run_id == str(RUN_ID) and snapshot.workflow == "billing"
    assert snapshot.input == {"invoice_id": "inv-1"}
    assert not snapshot.terminal and snapshot.terminal_status is None


def test_planned_runnable_without_attempt_is_a_pending_dispatch() -> None:
    h = Harness()
    key = h.plan("load")

    snapshot = h.snapshot()

    assert snapshot.reason is SnapshotReason.PLANNED_DISPATCH_PENDING_SCHEDULE
    assert snapshot.status is SnapshotStatus.RUNNING
    assert [r.runnable_key for r in snapshot.pending_dispatches] == [key]
    assert snapshot.planned_runnable_keys == [key]


def test_attempt_visible_exactly_at_now_is_visible() -> None:
    h = Harness()
    key = h.dispatch("load", at=LATER)

    snapshot = h.snapshot(LATER)

    assert snapshot.reason is SnapshotReason.ATTEMPT_VISIBLE
    assert [a.runnable_key for a in snapshot.visible_attempts] == [key]
    assert snapshot.scheduled_attempts == [] and snapshot.pending_dispatches == []


def test_future_attempt_is_scheduled_for_later_with_next_visible_at() -> None:
    h = Harness()
    key = h.dispatch("load", at=LATER)

    snapshot = h.snapshot(LATER - timedelta(seconds=1))

    assert snapshot.reason is SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER
    assert snapshot.status is SnapshotStatus.RUNNING
    assert [a.runnable_key for a in snapshot.scheduled_attempts] == [key]
    assert snapshot.visible_attempts == []
    assert snapshot.next_visible_at == LATER


def test_claimed_attempt_with_running_lease_is_attempt_claimed() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)

    snapshot = h.snapshot(T0 + LEASE - timedelta(seconds=1))

    assert snapshot.reason is SnapshotReason.ATTEMPT_CLAIMED
    (claimed,) = snapshot.claimed_attempts
    assert claimed.owner_id == "worker-1" and claimed.claim_id == "c1"
    assert claimed.lease_until == T0 + LEASE
    assert snapshot.expired_claims == []


def test_lease_ending_exactly_now_is_an_expired_claim() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)

    snapshot = h.snapshot(T0 + LEASE)

    assert snapshot.reason is SnapshotReason.EXPIRED_CLAIM
    assert [a.runnable_key for a in snapshot.expired_claims] == [key]
    assert snapshot.claimed_attempts == []


def test_completed_attempt_not_applied_is_a_pending_result() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)
    h.complete(key, {"loaded": True})

    snapshot = h.snapshot()

    assert snapshot.reason is SnapshotReason.COMPLETED_RESULT_PENDING_APPLY
    (pending,) = snapshot.pending_results
    assert pending.runnable_key == key and pending.result == {"loaded": True}
    assert pending.status is AttemptStatus.COMPLETED and not pending.applied


def test_future_retry_makes_the_run_retrying_and_waiting_for_retry() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)
    retry_key = h.fail_with_retry(key, retry_at=LATER)

    snapshot = h.snapshot(T0 + timedelta(seconds=1))

    assert snapshot.status is SnapshotStatus.RETRYING
    assert snapshot.reason is SnapshotReason.WAITING_FOR_RETRY
    (retry,) = snapshot.scheduled_attempts
    assert retry.runnable_key == retry_key and retry.retry_of == key
    assert retry.error is not None and retry.error["code"] == "boom"
    (applied,) = snapshot.applied_runnables
    assert applied.outcome == "error" and applied.transition is not None
    assert applied.transition["retry_runnable_key"] == retry_key


def test_retry_once_visible_is_running_and_attempt_visible() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)
    h.fail_with_retry(key, retry_at=LATER)

    snapshot = h.snapshot(LATER)

    assert snapshot.status is SnapshotStatus.RUNNING
    assert snapshot.reason is SnapshotReason.ATTEMPT_VISIBLE


def test_deferred_continuation_scheduled_later_is_deferred_continuation() -> None:
    h = Harness()
    deferred = {"reason": "rate_limited", "delay_ms": 30000, "deferred_from": "k0"}
    key = h.dispatch("load", 2, at=LATER, deferred=deferred)

    snapshot = h.snapshot()

    assert snapshot.reason is SnapshotReason.DEFERRED_CONTINUATION
    assert snapshot.status is SnapshotStatus.RUNNING
    (attempt,) = snapshot.scheduled_attempts
    assert attempt.runnable_key == key and attempt.deferred == deferred


def test_paused_run_needs_manual_intervention() -> None:
    h = Harness()
    h.run.pause("approve", kind=ManualKind.APPROVAL, now=T0, metadata={"ticket": "T-1"})

    snapshot = h.snapshot()

    assert snapshot.status is SnapshotStatus.PAUSED
    assert snapshot.reason is SnapshotReason.MANUAL_INTERVENTION_REQUIRED
    assert snapshot.manual_state is not None
    assert snapshot.manual_state.step == "approve" and snapshot.manual_state.kind == "approval"
    assert snapshot.manual_state.metadata == {"ticket": "T-1"}


def test_every_planned_runnable_applied_is_idle() -> None:
    h = Harness()
    h.step_ok("load", None, result={"loaded": True})

    snapshot = h.snapshot()

    assert snapshot.reason is SnapshotReason.IDLE
    assert snapshot.status is SnapshotStatus.PENDING
    assert snapshot.context == {"loaded": True}


def test_failed_attempt_the_run_never_applied_is_waiting_for_dispatch() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)
    h.queue.fail(
        key, claim_id="c1", claim_token_hash=hash_claim_token(TOKEN), error={"code": "x"}, now=T0
    )

    snapshot = h.snapshot()

    assert snapshot.reason is SnapshotReason.WAITING_FOR_DISPATCH
    assert snapshot.attempts[0].status is AttemptStatus.FAILED
    assert snapshot.pending_results == [] and snapshot.pending_dispatches == []


def test_terminal_run_reports_terminal_and_hides_live_work() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.plan("check")
    h.run.pause("approve", kind=ManualKind.PAUSE, now=T0)
    error = {"code": "boom", "step": "load", "runnable_key": key, "reason": "exhausted"}
    h.run.end(TerminalStatus.FAILED, now=LATER, error=error)

    snapshot = h.snapshot(LATER)

    assert snapshot.reason is SnapshotReason.TERMINAL
    assert snapshot.status is SnapshotStatus.FAILED
    assert snapshot.terminal and snapshot.terminal_status == "failed"
    assert snapshot.visible_attempts == snapshot.pending_dispatches == []
    assert snapshot.manual_state is None and snapshot.error == error
    assert snapshot.ended_at == LATER and len(snapshot.attempts) == 1


@pytest.mark.parametrize("status", list(TerminalStatus))
def test_terminal_status_is_the_snapshot_status(status: TerminalStatus) -> None:
    h = Harness()
    h.run.end(status, now=T0)

    assert h.snapshot().status.value == status.value


def test_snapshot_never_contains_the_claim_token_or_its_hash() -> None:
    h = Harness()
    key = h.dispatch("load")
    h.claim(key)

    text = json.dumps(h.snapshot(include_history=True).model_dump(mode="json"))

    assert TOKEN not in text and hash_claim_token(TOKEN) not in text
    assert "token" not in text


def test_dump_is_json_safe_with_times_as_iso_strings() -> None:
    h = Harness()
    h.run.receive_command("cancel_run", now=T0, payload={"at": "x"}, actor="ops")
    h.step_ok("load", None, result={"loaded": True})

    dumped = h.snapshot().model_dump(mode="json")

    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["as_of"] == T0.isoformat().replace("+00:00", "Z")
    assert dumped["applied_runnables"][0]["applied_at"] == T0.isoformat().replace("+00:00", "Z")


def test_without_history_results_are_left_out_but_command_receipts_are_whole() -> None:
    h = Harness()
    h.run.receive_command(
        "resume_run", now=T0, payload={"note": "n"}, comment="go on", metadata={"ticket": "T-1"}
    )
    h.step_ok("load", None, result={"loaded": True})

    compact = h.snapshot()
    full = h.snapshot(include_history=True)

    assert compact.applied_runnables[0].result is None
    assert full.applied_runnables[0].result == {"loaded": True}
    assert compact.command_history == full.command_history
    receipt = compact.command_history[0]
    assert (receipt.payload, receipt.comment, receipt.metadata) == (
        {"note": "n"},
        "go on",
        {"ticket": "T-1"},
    )
    assert not compact.history_included and full.history_included


def test_parent_run_comes_from_the_context() -> None:
    h = Harness()
    parent = {"run_id": "p-1", "step": "spawn"}
    h.step_ok("load", None, result={"parent": parent})

    assert h.snapshot().parent_run == parent


def test_anomalies_are_tagged_by_source_and_filtered_by_run() -> None:
    h = Harness()
    h.run.trigger_event(
        h.run.RunnableApplied,
        runnable_key="never-planned",
        outcome="ok",
        result=None,
        error=None,
        transition=None,
        timestamp=T0,
    )
    ours = {"reason": "stale_claim", "run_id": str(RUN_ID), "at": T0}
    theirs = {"reason": "stale_claim", "run_id": "someone-else"}

    snapshot = h.snapshot(queue_anomalies=[ours, theirs])

    assert [(a["reason"], a["source"]) for a in snapshot.anomalies] == [
        ("unknown_runnable_intent", "workflow"),
        ("stale_claim", "dispatch"),
    ]
    assert snapshot.anomaly_count == 2


def test_thread_revisions_carry_run_and_queue_versions() -> None:
    h = Harness()
    h.dispatch("load")

    snapshot = h.snapshot(queue_version=h.queue.version)

    assert snapshot.thread_revisions.run == h.run.version
    assert snapshot.thread_revisions.dispatch == h.queue.version


def test_definition_matches_only_when_a_spec_is_given() -> None:
    spec = transition_spec()

    assert Harness(spec).snapshot().definition_matches is True
    assert Harness().snapshot().definition_matches is None
    assert Harness().snapshot().definition_fingerprint == "f" * 64


def test_attempts_of_other_runs_are_ignored() -> None:
    h = Harness()
    h.queue.schedule(
        run_id="00000000-0000-4000-8000-0000000000ff",
        runnable_key="other:load:1",
        step="load",
        attempt_number=1,
        visible_at=T0,
        now=T0,
    )

    snapshot = h.snapshot()

    assert snapshot.attempts == []


def test_snapshot_is_frozen() -> None:
    snapshot = Harness().snapshot()

    with pytest.raises(ValidationError):
        snapshot.status = SnapshotStatus.FAILED  # type: ignore[misc]


def _deadline(due_in: timedelta, *, escalation: str | None = None) -> dict[str, object]:
    raw: dict[str, object] = {
        "scheduled_at": T0,
        "due_at": T0 + due_in,
        "due_soon_at": T0 + due_in - timedelta(minutes=1),
    }
    if escalation:
        raw["escalation"] = escalation
    return raw


@pytest.mark.parametrize(
    ("now", "escalation", "expected"),
    [
        (T0, None, DeadlineStatus.ON_TIME),
        (T0 + timedelta(minutes=9), None, DeadlineStatus.DUE_SOON),
        (T0 + timedelta(minutes=10), None, DeadlineStatus.OVERDUE),
        (T0 + timedelta(minutes=10), "operator_action", DeadlineStatus.ESCALATED),
    ],
)
def test_deadline_status_is_evaluated_at_now(
    now: object, escalation: str | None, expected: DeadlineStatus
) -> None:
    h = Harness()
    h.dispatch("load", deadline=_deadline(timedelta(minutes=10), escalation=escalation))

    snapshot = h.snapshot(now)  # type: ignore[arg-type]

    assert snapshot.deadline is not None and snapshot.deadline.status is expected
    assert snapshot.deadline.due_at == T0 + timedelta(minutes=10)


def test_earliest_open_deadline_is_the_run_deadline_and_malformed_ones_are_skipped() -> None:
    h = Harness()
    h.dispatch("load", deadline=_deadline(timedelta(minutes=10)))
    h.dispatch("check", deadline=_deadline(timedelta(minutes=5)))
    h.dispatch("notify", deadline={"due_at": "not a time"})

    snapshot = h.snapshot()

    assert [d.step for d in snapshot.deadlines] == ["check", "load"]
    assert snapshot.deadline is not None and snapshot.deadline.step == "check"


def test_applied_runnable_deadline_is_closed() -> None:
    h = Harness()
    key = h.dispatch("load", deadline=_deadline(timedelta(minutes=10)))
    h.claim(key)
    h.complete(key)
    h.apply(key)

    assert h.snapshot().deadline is None
