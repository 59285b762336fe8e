"""`Explanation`: why a run stands where it does, and what can safely happen next.

Built from a snapshot alone (api catalog 2.7, 5.2): the snapshot's reason picks a summary,
details and next actions; evidence gathers the facts an operator checks before acting. Work
beside the forward path changes what the run is doing whatever the reason says, so it is
told on top of it: a rollback in progress or done (guide 2.9), and scheduled dynamic nodes
a run stays open for.
Explanations are read-only and deterministic: the same snapshot and ``now`` give the same
explanation, byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pydantic import JsonValue

from squidmesh_es.read_model._compensation import CompensationView, recovery_policy
from squidmesh_es.read_model._deadline import require_aware
from squidmesh_es.read_model._json import JsonMap, ReadModel, to_json, to_json_map
from squidmesh_es.read_model._snapshot import (
    AttemptView,
    CommandRecord,
    RunnableView,
    RunSnapshot,
)
from squidmesh_es.read_model._vocab import NextAction, SnapshotReason, SnapshotStatus

__all__ = ["Explanation", "explain_run_snapshot"]


class Explanation(ReadModel):
    """The diagnosis of one run at a time."""

    run_id: str
    workflow: str
    queue: str
    definition_version: str | None
    status: SnapshotStatus
    reason: SnapshotReason
    step: str | None
    """The step the reason is about, when there is one."""
    summary: str
    """One sentence for people."""
    details: JsonMap
    """The facts behind the reason (counts, keys, times), plus command details."""
    next_actions: list[NextAction]
    evidence: JsonMap
    """Everything an operator checks before acting: revisions, counts, commands, anomalies."""


_Diagnosis = tuple[str, JsonMap, list[NextAction], str | None]


def explain_run_snapshot(
    snapshot: RunSnapshot,
    *,
    now: datetime,
    missing_steps: Sequence[Mapping[str, JsonValue]] = (),
) -> Explanation:
    """Explain ``snapshot``; ``now`` measures waits and deadlines from the reader's time.

    ``missing_steps`` are the run's waiting attempts whose step the reader's deploy lacks
    (``step``, ``workflow`` and both definition fingerprints each): they come first, since
    nothing else moves the run until a worker with that code claims them.

    Raises:
        InvalidArgument: ``now`` is naive.
    """
    require_aware(now)
    summary, details, next_actions, step = _DIAGNOSES[snapshot.reason](snapshot, now)
    if missing_steps and not snapshot.terminal:
        summary, details, next_actions, step = _missing(missing_steps, details, next_actions)
    summary, details = _side_work(snapshot, summary, details)
    if snapshot.command_history:
        details = {**details, **_command_details(snapshot.command_history)}
    return Explanation(
        run_id=snapshot.run_id,
        workflow=snapshot.workflow,
        queue=snapshot.queue,
        definition_version=snapshot.definition_version,
        status=snapshot.status,
        reason=snapshot.reason,
        step=step,
        summary=summary,
        details=details,
        next_actions=next_actions,
        evidence=_evidence(snapshot, now),
    )


# -- one diagnosis per reason --------------------------------------------------------------


def _keys(items: Sequence[AttemptView | RunnableView]) -> list[JsonValue]:
    return [item.runnable_key for item in items]


def _wait(snapshot: RunSnapshot, now: datetime) -> JsonMap:
    at = snapshot.next_visible_at
    return {
        "next_visible_at": to_json(at),
        "wait_seconds": max(0.0, (at - now).total_seconds()) if at else None,
    }


def _terminal(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "The run is terminal according to the run journal.",
        {"terminal": s.terminal, "terminal_status": s.terminal_status, "error": s.error},
        [NextAction.INSPECT_TERMINAL_RUN],
        None,
    )


def _manual(s: RunSnapshot, now: datetime) -> _Diagnosis:
    manual = s.manual_state
    return (
        "The run is paused for manual intervention.",
        to_json_map(manual.model_dump()) if manual else {},
        [NextAction.RESOLVE_MANUAL_STEP],
        manual.step if manual else None,
    )


def _pending_result(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "Dispatch result is complete but has not been applied to the run journal.",
        {"pending_result_count": len(s.pending_results), "runnable_keys": _keys(s.pending_results)},
        [NextAction.APPLY_PENDING_RESULT],
        s.pending_results[0].step,
    )


def _pending_dispatch(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "Planned runnable has not been recorded in the dispatch journal.",
        {
            "pending_dispatch_count": len(s.pending_dispatches),
            "runnable_keys": _keys(s.pending_dispatches),
        },
        [NextAction.SCHEDULE_PENDING_DISPATCH],
        s.pending_dispatches[0].step,
    )


def _expired(s: RunSnapshot, now: datetime) -> _Diagnosis:
    leases = [a.lease_until for a in s.expired_claims if a.lease_until is not None]
    return (
        "A claimed dispatch attempt has expired and is recoverable.",
        {
            "expired_claim_count": len(s.expired_claims),
            "runnable_keys": _keys(s.expired_claims),
            "oldest_lease_until": to_json(min(leases, default=None)),
        },
        [NextAction.RECOVER_EXPIRED_CLAIM],
        s.expired_claims[0].step,
    )


def _visible(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "A dispatch attempt is visible and waiting for a worker claim.",
        {
            "visible_attempt_count": len(s.visible_attempts),
            "runnable_keys": _keys(s.visible_attempts),
        },
        [NextAction.WAIT_FOR_WORKER_CLAIM],
        s.visible_attempts[0].step,
    )


def _claimed(s: RunSnapshot, now: datetime) -> _Diagnosis:
    leases = [a.lease_until for a in s.claimed_attempts if a.lease_until is not None]
    return (
        "A dispatch attempt is claimed and waiting for completion.",
        {
            "claimed_attempt_count": len(s.claimed_attempts),
            "runnable_keys": _keys(s.claimed_attempts),
            "earliest_lease_until": to_json(min(leases, default=None)),
        },
        [NextAction.WAIT_FOR_ATTEMPT_COMPLETION],
        s.claimed_attempts[0].step,
    )


def _scheduled(summary: str) -> Callable[[RunSnapshot, datetime], _Diagnosis]:
    def diagnose(s: RunSnapshot, now: datetime) -> _Diagnosis:
        first = s.scheduled_attempts[0]
        details: JsonMap = {
            "scheduled_attempt_count": len(s.scheduled_attempts),
            "runnable_keys": _keys(s.scheduled_attempts),
            **_wait(s, now),
        }
        if s.reason is SnapshotReason.DEFERRED_CONTINUATION:
            details["deferred"] = first.deferred
        if s.reason is SnapshotReason.WAITING_FOR_RETRY:
            details["attempt_number"] = first.attempt_number
            details["retry_of"] = first.retry_of
        return summary, details, [NextAction.WAIT_UNTIL_ATTEMPT_VISIBLE], first.step

    return diagnose


def _idle(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "All currently planned runnables have been applied.",
        {
            "planned_count": len(s.planned_runnable_keys),
            "applied_count": len(s.applied_runnable_keys),
        },
        [NextAction.WAIT_FOR_NEW_RUNNABLES],
        None,
    )


def _started(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "The run has started but no dispatch attempts have been recorded yet.",
        {"planned_count": len(s.planned_runnable_keys)},
        [NextAction.INSPECT_DISPATCH_STATE],
        None,
    )


def _waiting(s: RunSnapshot, now: datetime) -> _Diagnosis:
    return (
        "The run has dispatch state but no visible recovery action is currently implied.",
        {"attempt_count": len(s.attempts)},
        [NextAction.INSPECT_DISPATCH_STATE],
        s.attempts[0].step if s.attempts else None,
    )


_DIAGNOSES: dict[SnapshotReason, Callable[[RunSnapshot, datetime], _Diagnosis]] = {
    SnapshotReason.TERMINAL: _terminal,
    SnapshotReason.MANUAL_INTERVENTION_REQUIRED: _manual,
    SnapshotReason.COMPLETED_RESULT_PENDING_APPLY: _pending_result,
    SnapshotReason.PLANNED_DISPATCH_PENDING_SCHEDULE: _pending_dispatch,
    SnapshotReason.EXPIRED_CLAIM: _expired,
    SnapshotReason.ATTEMPT_VISIBLE: _visible,
    SnapshotReason.ATTEMPT_CLAIMED: _claimed,
    SnapshotReason.DEFERRED_CONTINUATION: _scheduled(
        "A deferred continuation is scheduled for future visibility."
    ),
    SnapshotReason.WAITING_FOR_RETRY: _scheduled(
        "A failed attempt is waiting for its retry to become visible."
    ),
    SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER: _scheduled(
        "A dispatch attempt is scheduled for future visibility."
    ),
    SnapshotReason.IDLE: _idle,
    SnapshotReason.RUN_STARTED: _started,
    SnapshotReason.WAITING_FOR_DISPATCH: _waiting,
}


def _missing(
    missing: Sequence[Mapping[str, JsonValue]], details: JsonMap, actions: list[NextAction]
) -> _Diagnosis:
    first = missing[0]
    deploy = str(first.get("deploy_definition_fingerprint") or "")[:12]
    steps = sorted({str(m["step"]) for m in missing})
    summary = (
        f"Step {_names(steps)} of workflow {first.get('workflow')} is missing from this "
        f"deploy (definition {deploy}); the run waits until a worker that has it claims it."
    )
    entries: list[JsonValue] = [dict(m) for m in missing]
    return (
        summary,
        {**details, "missing_steps": entries},
        [NextAction.DEPLOY_MISSING_STEP, *actions],
        steps[0],
    )


# -- work beside the forward path -----------------------------------------------------------


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _rollback(view: CompensationView, terminal: bool) -> str:
    """One sentence on the rollback: what began it and where each step to undo stands."""
    after = f"after {view.failed_step or 'a step'} failed"
    parts = [f"compensated: {_names(view.compensated)}", f"failed callbacks: {_names(view.failed)}"]
    if terminal:
        if view.abandoned:
            parts.append(f"left undone: {_names(view.abandoned)}")
        return f"A rollback ran {after} ({'; '.join(parts)})."
    parts.append(f"still to undo: {_names(view.pending)}")
    if view.in_flight:
        parts.append(f"waiting for: {_names(view.in_flight)}")
    return f"The run is compensating {after} ({'; '.join(parts)})."


def _pending_dynamic(s: RunSnapshot) -> list[str]:
    if s.terminal:
        return []
    pending = (r.step for r in s.planned_runnables if r.dynamic is not None and not r.applied)
    return list(dict.fromkeys(pending))


def _side_work(s: RunSnapshot, summary: str, details: JsonMap) -> tuple[str, JsonMap]:
    """The summary and details told on top of the reason: rollback and dynamic nodes.

    What the run is doing leads (it is compensating, or it stays open only for dynamic
    nodes); what it did or also waits for follows the reason's own sentence.
    """
    view = s.compensation
    if view is not None:
        sentence = _rollback(view, s.terminal)
        summary = f"{summary} {sentence}" if s.terminal else f"{sentence} {summary}"
        details = {**details, "compensation": to_json_map(view.model_dump(mode="json"))}
    dynamic = _pending_dynamic(s)
    if dynamic:
        details = {**details, "pending_dynamic_nodes": list[JsonValue](dynamic)}
    if dynamic and view is None:  # a rollback's "waiting for" names them already
        forward_done = s.manual_state is None and all(
            r.applied for r in s.planned_runnables if r.dynamic is None
        )
        if forward_done:
            summary = (
                "The declared steps are done; the run stays open until its dynamic nodes "
                f"settle ({_names(dynamic)}). {summary}"
            )
        else:
            summary = f"{summary} It also waits on dynamic nodes ({_names(dynamic)})."
    return summary, details


# -- commands and evidence -----------------------------------------------------------------


def _command_summary(command: CommandRecord) -> JsonMap:
    return {
        "signal_type": command.signal_type,
        "idempotency_key": command.idempotency_key,
        "actor": command.actor,
        "occurred_at": to_json(command.occurred_at),
    }


def _duplicates(commands: list[CommandRecord]) -> list[JsonMap]:
    """Commands seen more than once: same type and key, or same type and payload if keyless."""
    groups = Counter(
        (c.signal_type, c.idempotency_key or "", "" if c.idempotency_key else c.payload_digest)
        for c in commands
    )
    duplicates: list[JsonMap] = []
    for (signal_type, key, _), count in groups.items():
        if count > 1:
            entry: JsonMap = {"signal_type": signal_type, "count": count}
            if key:
                entry["idempotency_key"] = key
            duplicates.append(entry)
    return duplicates


def _command_details(commands: list[CommandRecord]) -> JsonMap:
    details: JsonMap = {
        "command_count": len(commands),
        "latest_command": _command_summary(commands[-1]),
    }
    duplicates = _duplicates(commands)
    if duplicates:
        details["duplicate_commands"] = list(duplicates)
    return details


def _evidence(s: RunSnapshot, now: datetime) -> JsonMap:
    policy = recovery_policy(s.planned_runnables, s.applied_runnables, s.compensation)
    attempt_counts = Counter(a.status.value for a in s.attempts)
    deadline = s.deadline.at(now) if s.deadline is not None else None
    return {
        "snapshot_reason": s.reason.value,
        "definition_version": s.definition_version,
        "definition_fingerprint": s.definition_fingerprint,
        "definition_matches": s.definition_matches,
        "definition_source": s.definition_source,
        "thread_revisions": to_json_map(s.thread_revisions.model_dump()),
        "terminal_status": s.terminal_status,
        "manual_state": to_json(s.manual_state.model_dump()) if s.manual_state else None,
        "parent_run": s.parent_run,
        "child_runs": list(s.child_runs),
        "command_history": [_command_summary(c) for c in s.command_history],
        "command_counts": dict(sorted(Counter(c.signal_type for c in s.command_history).items())),
        "duplicate_commands": list(_duplicates(s.command_history)),
        "planned_runnable_keys": list(s.planned_runnable_keys),
        "applied_runnable_keys": list(s.applied_runnable_keys),
        "next_visible_at": to_json(s.next_visible_at),
        "attempt_counts": dict(sorted(attempt_counts.items())),
        "deadline": to_json(deadline.model_dump()) if deadline else None,
        "anomaly_count": s.anomaly_count,
        "anomalies": list(s.anomalies),
        "recovery_policy": policy,
        "compensation": (
            to_json_map(s.compensation.model_dump(mode="json")) if s.compensation else None
        ),
        "pending_dynamic_nodes": list[JsonValue](_pending_dynamic(s)),
    }
