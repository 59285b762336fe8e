from __future__ import annotations

import json
from datetime import timedelta

import pytest
from read_model_builders import (
    LATER,
    LEASE,
    SAGA_POLICY,
    SCENARIOS,
    T0,
    Harness,
    recovery,
    saga_spec,
    snapshot_for,
    transition_spec,
)

from squidmesh_es.domain import TerminalStatus
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model import (
    DeadlineStatus,
    NextAction,
    SnapshotReason,
    explain_run_snapshot,
)

EXPECTED = {
    SnapshotReason.TERMINAL: (
        "The run is terminal according to the run journal.",
        NextAction.INSPECT_TERMINAL_RUN,
        None,
        {"terminal": True, "terminal_status": "failed"},
    ),
    SnapshotReason.MANUAL_INTERVENTION_REQUIRED: (
        "The run is paused for manual intervention.",
        NextAction.RESOLVE_MANUAL_STEP,
        "approve",
        {"step": "approve", "kind": "approval"},
    ),
    SnapshotReason.COMPLETED_RESULT_PENDING_APPLY: (
        "Dispatch result is complete but has not been applied to the run journal.",
        NextAction.APPLY_PENDING_RESULT,
        "load",
        {"pending_result_count": 1},
    ),
    SnapshotReason.PLANNED_DISPATCH_PENDING_SCHEDULE: (
        "Planned runnable has not been recorded in the dispatch journal.",
        NextAction.SCHEDULE_PENDING_DISPATCH,
        "load",
        {"pending_dispatch_count": 1},
    ),
    SnapshotReason.EXPIRED_CLAIM: (
        "A claimed dispatch attempt has expired and is recoverable.",
        NextAction.RECOVER_EXPIRED_CLAIM,
        "load",
        {"expired_claim_count": 1, "oldest_lease_until": "2026-03-01T12:00:30+00:00"},
    ),
    SnapshotReason.ATTEMPT_VISIBLE: (
        "A dispatch attempt is visible and waiting for a worker claim.",
        NextAction.WAIT_FOR_WORKER_CLAIM,
        "load",
        {"visible_attempt_count": 1},
    ),
    SnapshotReason.ATTEMPT_CLAIMED: (
        "A dispatch attempt is claimed and waiting for completion.",
        NextAction.WAIT_FOR_ATTEMPT_COMPLETION,
        "load",
        {"claimed_attempt_count": 1, "earliest_lease_until": "2026-03-01T12:00:30+00:00"},
    ),
    SnapshotReason.DEFERRED_CONTINUATION: (
        "A deferred continuation is scheduled for future visibility.",
        NextAction.WAIT_UNTIL_ATTEMPT_VISIBLE,
        "load",
        {"scheduled_attempt_count": 1, "deferred": {"reason": "rate_limited"}},
    ),
    SnapshotReason.WAITING_FOR_RETRY: (
        "A failed attempt is waiting for its retry to become visible.",
        NextAction.WAIT_UNTIL_ATTEMPT_VISIBLE,
        "load",
        {"scheduled_attempt_count": 1, "attempt_number": 2},
    ),
    SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER: (
        "A dispatch attempt is scheduled for future visibility.",
        NextAction.WAIT_UNTIL_ATTEMPT_VISIBLE,
        "load",
        {"scheduled_attempt_count": 1, "next_visible_at": "2026-03-01T12:05:00+00:00"},
    ),
    SnapshotReason.IDLE: (
        "All currently planned runnables have been applied.",
        NextAction.WAIT_FOR_NEW_RUNNABLES,
        None,
        {"planned_count": 1, "applied_count": 1},
    ),
    SnapshotReason.RUN_STARTED: (
        "The run has started but no dispatch attempts have been recorded yet.",
        NextAction.INSPECT_DISPATCH_STATE,
        None,
        {"planned_count": 0},
    ),
    SnapshotReason.WAITING_FOR_DISPATCH: (
        "The run has dispatch state but no visible recovery action is currently implied.",
        NextAction.INSPECT_DISPATCH_STATE,
        "load",
        {"attempt_count": 1},
    ),
}


def test_every_reason_has_a_scenario_and_an_expectation() -> None:
    assert set(SCENARIOS) == set(SnapshotReason) == set(EXPECTED)


@pytest.mark.parametrize("reason", list(SnapshotReason))
def test_each_reason_gives_its_summary_next_action_step_and_details(
    reason: SnapshotReason,
) -> None:
    snapshot = snapshot_for(reason)
    summary, action, step, details = EXPECTED[reason]

    explanation = explain_run_snapshot(snapshot, now=snapshot.as_of)

    assert snapshot.reason is reason and explanation.reason is reason
    assert explanation.summary == summary
    assert explanation.next_actions == [action]
    assert explanation.step == step
    assert details.items() <= explanation.details.items()
    assert explanation.evidence["snapshot_reason"] == reason.value


def test_runnable_keys_name_the_attempts_the_reason_is_about() -> None:
    snapshot = snapshot_for(SnapshotReason.ATTEMPT_VISIBLE)

    explanation = explain_run_snapshot(snapshot, now=T0)

    assert explanation.details["runnable_keys"] == [snapshot.visible_attempts[0].runnable_key]


def test_wait_is_measured_from_the_readers_now() -> None:
    snapshot = snapshot_for(SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER)

    explanation = explain_run_snapshot(snapshot, now=LATER - timedelta(seconds=90))

    assert explanation.details["wait_seconds"] == 90.0


def test_command_details_count_commands_and_group_duplicates() -> None:
    h = Harness()
    h.run.receive_command("approve_run", now=T0, idempotency_key="k1", actor="ann")
    h.run.receive_command("approve_run", now=T0, idempotency_key="k1", actor="ann")
    h.run.receive_command("resume_run", now=T0, payload={"n": 1})
    h.run.receive_command("resume_run", now=T0, payload={"n": 1})
    h.run.receive_command("resume_run", now=T0, payload={"n": 2}, actor="bob")

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.details["command_count"] == 5
    assert explanation.details["duplicate_commands"] == [
        {"signal_type": "approve_run", "count": 2, "idempotency_key": "k1"},
        {"signal_type": "resume_run", "count": 2},
    ]
    latest = explanation.details["latest_command"]
    assert isinstance(latest, dict) and latest["actor"] == "bob"
    assert explanation.evidence["command_counts"] == {"approve_run": 2, "resume_run": 3}


def test_no_duplicate_key_in_details_without_duplicates() -> None:
    h = Harness()
    h.run.receive_command("cancel_run", now=T0)

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.details["command_count"] == 1
    assert "duplicate_commands" not in explanation.details
    assert explanation.evidence["duplicate_commands"] == []


def test_without_commands_details_carry_no_command_keys() -> None:
    explanation = explain_run_snapshot(Harness().snapshot(), now=T0)

    assert "command_count" not in explanation.details


def test_evidence_counts_attempts_by_status_and_reports_revisions() -> None:
    h = Harness()
    h.dispatch("load")
    key = h.dispatch("check")
    h.claim(key)

    explanation = explain_run_snapshot(h.snapshot(queue_version=h.queue.version), now=T0)

    assert explanation.evidence["attempt_counts"] == {"available": 1, "claimed": 1}
    assert explanation.evidence["thread_revisions"] == {
        "run": h.run.version,
        "dispatch": h.queue.version,
    }
    assert explanation.evidence["anomaly_count"] == 0


def test_evidence_deadline_is_evaluated_at_the_readers_now() -> None:
    h = Harness()
    h.dispatch("load", deadline={"due_at": LATER})

    explanation = explain_run_snapshot(h.snapshot(T0), now=LATER)

    deadline = explanation.evidence["deadline"]
    assert isinstance(deadline, dict) and deadline["status"] == DeadlineStatus.OVERDUE.value


def test_explanation_is_deterministic_and_json_safe() -> None:
    snapshot = snapshot_for(SnapshotReason.EXPIRED_CLAIM)

    first = explain_run_snapshot(snapshot, now=T0 + LEASE).model_dump(mode="json")
    second = explain_run_snapshot(snapshot, now=T0 + LEASE).model_dump(mode="json")

    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        explain_run_snapshot(Harness().snapshot(), now=T0.replace(tzinfo=None))


# -- work beside the forward path -------------------------------------------------------------


def test_a_rollback_in_progress_leads_the_summary_and_fills_the_details() -> None:
    h = Harness(saga_spec())
    h.rolling_back()

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary == (
        "The run is compensating after capture failed (compensated: none; failed callbacks: "
        "none; still to undo: authorize, reserve). "
        "A dispatch attempt is visible and waiting for a worker claim."
    )
    assert explanation.step == "compensate:authorize"
    assert explanation.next_actions == [NextAction.WAIT_FOR_WORKER_CLAIM]
    compensation = explanation.details["compensation"]
    assert isinstance(compensation, dict)
    assert compensation["pending"] == ["authorize", "reserve"]
    assert compensation["failed_step"] == "capture"
    assert explanation.evidence["compensation"] == compensation


def test_recovery_policy_evidence_groups_the_completed_steps() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize", "notify")
    h.step_ok("audit", None, recovery=recovery(irreversible=True, compensatable=False))

    evidence = explain_run_snapshot(h.snapshot(), now=T0).evidence

    assert evidence["recovery_policy"] == {
        "compensatable": ["reserve", "authorize"],
        "not_compensatable": ["notify", "audit"],
        "irreversible": ["audit"],
        "will_not_be_undone": ["notify", "audit"],
    }
    assert evidence["compensation"] is None


def test_a_failed_callback_means_its_step_will_not_be_undone() -> None:
    h = Harness(saga_spec())
    h.callback(h.rolling_back(), outcome="error")
    h.callback(h.compensate("reserve", "capture"))
    h.run.end(TerminalStatus.FAILED, now=T0, error={"code": "step_failed", "step": "capture"})

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary == (
        "The run is terminal according to the run journal. A rollback ran after capture "
        "failed (compensated: reserve; failed callbacks: authorize)."
    )
    policy = explanation.evidence["recovery_policy"]
    assert isinstance(policy, dict)
    assert policy["will_not_be_undone"] == ["authorize", "notify"]
    assert policy["compensatable"] == ["reserve", "authorize"]


def test_a_rollback_cut_short_says_what_was_left_undone() -> None:
    h = Harness(saga_spec())
    h.callback(h.rolling_back())
    h.compensate("reserve", "capture")
    h.run.end(TerminalStatus.CANCELLED, now=T0)

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary.endswith(
        "A rollback ran after capture failed (compensated: authorize; failed callbacks: "
        "none; left undone: reserve)."
    )
    policy = explanation.evidence["recovery_policy"]
    assert isinstance(policy, dict) and policy["will_not_be_undone"] == ["reserve", "notify"]


def test_a_rollback_waiting_for_work_in_flight_says_so() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve", "authorize")
    h.dispatch("notify", at=LATER, recovery=SAGA_POLICY["notify"])
    h.step_failed("capture", recovery=SAGA_POLICY["capture"])
    h.callback(h.compensate("authorize", "capture"))

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary.startswith(
        "The run is compensating after capture failed (compensated: authorize; failed "
        "callbacks: none; still to undo: reserve; waiting for: notify)."
    )


def test_a_run_whose_declared_steps_are_done_stays_open_for_its_dynamic_nodes() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", None)
    h.schedule_dynamic("deliver:chat_1", "deliver:chat_2")

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary == (
        "The declared steps are done; the run stays open until its dynamic nodes settle "
        "(deliver:chat_1, deliver:chat_2). "
        "A dispatch attempt is visible and waiting for a worker claim."
    )
    assert explanation.details["pending_dynamic_nodes"] == ["deliver:chat_1", "deliver:chat_2"]
    assert explanation.evidence["pending_dynamic_nodes"] == ["deliver:chat_1", "deliver:chat_2"]


def test_dynamic_nodes_beside_a_running_forward_path_are_mentioned_after_the_reason() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.schedule_dynamic("deliver:chat_1")
    h.dispatch("check", at=LATER)

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert explanation.summary.endswith("It also waits on dynamic nodes (deliver:chat_1).")


def test_settled_dynamic_nodes_are_not_mentioned() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", None)
    (key,) = h.schedule_dynamic("deliver:chat_1")
    h.claim(key)
    h.complete(key)
    h.apply(key)

    explanation = explain_run_snapshot(h.snapshot(), now=T0)

    assert "dynamic" not in explanation.summary
    assert "pending_dynamic_nodes" not in explanation.details
    policy = explanation.evidence["recovery_policy"]
    assert isinstance(policy, dict) and policy["not_compensatable"] == ["deliver:chat_1"]


def test_evidence_says_when_the_definition_is_the_stored_runtime_spec() -> None:
    stored = Harness(saga_spec(), runtime_spec=True).snapshot()
    declared = Harness(saga_spec()).snapshot()

    assert explain_run_snapshot(stored, now=T0).evidence["definition_source"] == "runtime_spec"
    assert explain_run_snapshot(declared, now=T0).evidence["definition_source"] == "workflow"
