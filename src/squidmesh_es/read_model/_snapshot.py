"""`RunSnapshot`: one run as its journal and its queue's live attempts show it at a time.

The snapshot joins the two journals of a run (the spec's snapshot assembly, api catalog
3.5): the run's planned and applied runnables, manual state and audit trail, and the live
dispatch attempts of its queue, split by what they are waiting for at ``now``. Status and
reason are derived here, never stored, so that the same facts read at the same time always
give the same snapshot. Claim tokens and their hashes never reach it: the queue's `Attempt`
view carries neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from squidmesh_es.domain import Attempt, AttemptStatus, JSONDict, WorkflowRun
from squidmesh_es.read_model._compensation import CompensationView, build_compensation_view
from squidmesh_es.read_model._deadline import DeadlineView, read_deadline, require_aware
from squidmesh_es.read_model._json import JsonMap, ReadModel, json_digest, to_json_map
from squidmesh_es.read_model._vocab import SnapshotReason, SnapshotStatus
from squidmesh_es.workflow import WorkflowSpec

__all__ = [
    "AppliedRunnable",
    "AttemptHistoryStatus",
    "AttemptRecord",
    "AttemptView",
    "ClaimRecord",
    "CommandRecord",
    "ManualState",
    "RunSnapshot",
    "RunnableView",
    "ThreadRevisions",
    "build_run_snapshot",
]

_WAITING = (AttemptStatus.AVAILABLE, AttemptStatus.RETRY_SCHEDULED)

DefinitionSource = Literal["workflow", "runtime_spec"]
"""Where a run's definition comes from: a registered `Workflow` class, or the resolved spec
stored with the run by ``start_spec``."""


class RunnableView(ReadModel):
    """A planned runnable: one step at one attempt number, as the run decided it."""

    runnable_key: str
    step: str
    attempt_number: int
    idempotency_key: str
    input: JsonMap
    visible_at: datetime
    queue: str
    action: str | None = None
    recovery: JsonMap | None = None
    """Replay and compensation policy persisted with the runnable, if any."""
    deferred: JsonMap | None = None
    """``{reason, delay_ms, deferred_from}`` when this is a deferred continuation."""
    deadline: JsonMap | None = None
    """The persisted due times; the evaluated status is in `RunSnapshot.deadlines`."""
    compensation: JsonMap | None = None
    """``{step, runnable_key}`` of the completed step a saga callback undoes."""
    dynamic: JsonMap | None = None
    """``{dynamic_key, origin, max_attempts}`` when this is a scheduled dynamic node."""
    applied: bool = False


class AttemptView(ReadModel):
    """A live dispatch attempt of the run; never its claim token or token hash."""

    runnable_key: str
    step: str
    attempt_number: int
    status: AttemptStatus
    idempotency_key: str
    input: JsonMap
    visible_at: datetime
    claim_id: str | None = None
    owner_id: str | None = None
    lease_until: datetime | None = None
    result: JsonMap | None = None
    error: JsonMap | None = None
    completed_at: datetime | None = None
    wakeup_emitted: bool = False
    applied: bool = False
    retry_of: str | None = None
    """The failed attempt this one retries."""
    transition: JsonMap | None = None
    recovery: JsonMap | None = None
    deferred: JsonMap | None = None
    compensation: JsonMap | None = None
    """``{step, runnable_key}`` of the completed step a saga callback's attempt undoes."""
    dynamic: JsonMap | None = None
    """``{dynamic_key, origin, max_attempts}`` when the attempt runs a scheduled dynamic node."""
    metadata: JsonMap | None = None
    """Schedule metadata recorded with the attempt (sensitive keys were redacted on write)."""

    @property
    def is_retry(self) -> bool:
        """Whether this attempt tries again after a failure (not a deferred continuation)."""
        if self.deferred is not None:
            return False
        return self.status is AttemptStatus.RETRY_SCHEDULED or self.attempt_number > 1


class AppliedRunnable(ReadModel):
    """A result the run applied, with the route it selected.

    ``result`` is filled only in snapshots built with ``include_history``; the outcome,
    error and transition are always there, because they explain where the run went.
    """

    runnable_key: str
    step: str
    attempt_number: int | None
    outcome: str
    """``ok`` or ``error``."""
    transition: JsonMap | None
    """The chosen route (``{from, on, to, edge_id, ...}``), a retry
    (``{retry_runnable_key, retry_visible_at}``), or ``None``."""
    error: JsonMap | None
    applied_at: datetime | None
    result: JsonMap | None = None


class ClaimRecord(ReadModel):
    """The claim that produced a result, as the run recorded it when applying the result."""

    claim_id: str
    owner_id: str
    claimed_at: datetime | None = None
    """When the worker claimed the attempt (absent in results applied before 0.2)."""
    lease_until: datetime | None = None
    """The lease the claim was granted."""
    finished_at: datetime | None = None
    """When the worker's outcome was recorded."""
    outcome: str | None = None
    """The worker's outcome: ``ok``, ``error``, ``retry``, ``defer`` or
    ``definition_mismatch``."""


AttemptHistoryStatus = Literal["applied", "pending", "fenced"]
"""``applied``: the run applied its result; ``pending``: no result yet on a live run;
``fenced``: the run ended (cancelled, failed) before a result, so it never will have one."""


class AttemptRecord(ReadModel):
    """One attempt the run planned, from the run's own journal: it outlives the queue's copy.

    ``claim`` is set for results a worker produced under a claim; ``None`` for attempts no
    worker finished (and for results applied by builds that did not record claims).
    """

    runnable_key: str
    step: str
    attempt_number: int
    visible_at: datetime
    status: AttemptHistoryStatus
    outcome: str | None = None
    """The applied outcome (``ok``, ``error``, ``deferred``), when applied."""
    applied_at: datetime | None = None
    claim: ClaimRecord | None = None


class CommandRecord(ReadModel):
    """A command receipt from the run's audit trail, as recorded (metadata redacted on write).

    Every snapshot carries the receipts whole, so a caller sees what it just recorded;
    ``payload_digest`` tells duplicates apart at a glance. Hosts showing snapshots to anyone
    else apply `redact`, which hides payload, metadata and comment below the auditor scope.
    """

    signal_type: str
    idempotency_key: str | None
    actor: str | None
    occurred_at: datetime | None
    payload_digest: str
    payload: JsonMap | None = None
    metadata: JsonMap | None = None
    comment: str | None = None


class ManualState(ReadModel):
    """The manual boundary the run is paused at."""

    step: str
    kind: str
    """``pause`` or ``approval``."""
    paused_at: datetime | None
    metadata: JsonMap


class ThreadRevisions(ReadModel):
    """Versions of the two journals the snapshot was read from: the optimistic fences."""

    run: int
    dispatch: int | None = None
    """The queue's version, when the caller read it."""


class RunSnapshot(ReadModel):
    """Everything known about one run at ``as_of``: the full-detail operator view.

    Hosts showing it to anyone else redact it first (`redact`).
    """

    run_id: str
    workflow: str
    trigger: str | None
    queue: str
    status: SnapshotStatus
    reason: SnapshotReason
    terminal: bool
    terminal_status: str | None
    input: JsonMap
    context: JsonMap
    planned_runnables: list[RunnableView]
    planned_runnable_keys: list[str]
    applied_runnables: list[AppliedRunnable]
    applied_runnable_keys: list[str]
    attempts: list[AttemptView]
    """Every live attempt of the run, by ``(visible_at, runnable_key, attempt_number)``."""
    visible_attempts: list[AttemptView]
    """Claimable now: available or retry-scheduled with ``visible_at <= as_of``."""
    scheduled_attempts: list[AttemptView]
    """Waiting for a later ``visible_at``."""
    claimed_attempts: list[AttemptView]
    """Held by a worker whose lease runs past ``as_of``."""
    expired_claims: list[AttemptView]
    """Claimed with ``lease_until <= as_of``: recoverable."""
    pending_dispatches: list[RunnableView]
    """Planned, unapplied runnables that have no attempt in the queue."""
    pending_results: list[AttemptView]
    """Completed attempts whose result the run has not applied yet. A failed attempt the
    run has not applied is not one: the engine applies failures in the same transaction,
    so it means the journals disagree (reason ``waiting_for_dispatch``)."""
    manual_state: ManualState | None
    command_history: list[CommandRecord]
    attempt_history: list[AttemptRecord] = []
    """Every attempt the run planned, with its result and claim, filled with
    ``include_history``: the audit trail of who ran what and when, kept by the run itself."""
    parent_run: JsonMap | None
    child_runs: list[JsonMap]
    dynamic_work: list[JsonMap]
    deadline: DeadlineView | None
    """The open deadline due first."""
    deadlines: list[DeadlineView]
    """Every open deadline, by due time."""
    definition_version: str | None
    definition_fingerprint: str | None
    definition_matches: bool | None
    """Whether the definition given to the builder has the run's fingerprint; ``None`` when
    none was given. A mismatch means the code changed since the run started."""
    definition_source: DefinitionSource = "workflow"
    """``runtime_spec`` when the run executes the spec stored with it (``start_spec``), whatever
    code is deployed; ``workflow`` when its definition is a registered `Workflow` class."""
    compensation: CompensationView | None = None
    """The run's rollback once it began one (guide 2.9), derived from its runnables so that
    readers need not; ``None`` for a run that never rolled back."""
    replayed_from_run_id: str | None
    thread_revisions: ThreadRevisions
    anomalies: list[JsonMap]
    """The newest anomalies kept, each tagged with its ``source`` journal."""
    anomaly_count: int
    """All anomalies ever found, including those no longer kept."""
    next_visible_at: datetime | None
    error: JsonMap | None
    """Why the run failed, when it did."""
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    as_of: datetime
    """The ``now`` the snapshot was read at."""
    history_included: bool


def build_run_snapshot(
    run: WorkflowRun,
    attempts: Sequence[Attempt],
    *,
    now: datetime,
    spec: WorkflowSpec | None = None,
    include_history: bool = False,
    queue_version: int | None = None,
    queue_anomalies: Sequence[Mapping[str, object]] = (),
) -> RunSnapshot:
    """The snapshot of ``run`` at ``now``, given the live attempts its queue holds for it.

    Args:
        run: the run aggregate.
        attempts: the queue's live attempts (`DispatchQueue.attempts_of`); attempts of
            other runs are ignored.
        now: the time visibility, leases and deadlines are evaluated at.
        spec: the run's definition, when loadable; only its fingerprint is read, to tell
            whether the run still matches the code (``definition_matches``).
        include_history: fill applied results and the attempt history.
        queue_version: the queue aggregate's version, for ``thread_revisions``.
        queue_anomalies: the queue's anomalies; those naming this run are included.

    A terminal run has no visible, scheduled, claimed or expired attempts, nothing pending
    and no manual state: the queue fences it out, whatever the attempt list says.

    Raises:
        InvalidArgument: ``now`` is naive.
    """
    require_aware(now)
    run_id = str(run.id)
    terminal = run.is_terminal
    planned = _planned_views(run)
    views = sorted(
        (_attempt_view(a, run) for a in attempts if a.run_id == run_id),
        key=lambda a: (a.visible_at, a.runnable_key, a.attempt_number),
    )
    live_keys = {a.runnable_key for a in views}
    if terminal:
        visible: list[AttemptView] = []
        scheduled: list[AttemptView] = []
        claimed: list[AttemptView] = []
        expired: list[AttemptView] = []
        pending_dispatches: list[RunnableView] = []
        pending_results: list[AttemptView] = []
    else:
        waiting = [a for a in views if a.status in _WAITING]
        visible = [a for a in waiting if a.visible_at <= now]
        scheduled = [a for a in waiting if a.visible_at > now]
        held = [a for a in views if a.status is AttemptStatus.CLAIMED]
        claimed = [a for a in held if a.lease_until is not None and a.lease_until > now]
        expired = [a for a in held if a.lease_until is None or a.lease_until <= now]
        pending_dispatches = [
            r for r in planned if not r.applied and r.runnable_key not in live_keys
        ]
        pending_results = [
            a for a in views if a.status is AttemptStatus.COMPLETED and not a.applied
        ]
    manual = _manual_state(run.manual_state) if not terminal else None
    deadlines = [] if terminal else _open_deadlines(planned, run.manual_state, now)
    context = to_json_map(run.context)
    parent = context.get("parent")
    applied = _applied(run, include_history)
    return RunSnapshot(
        run_id=run_id,
        workflow=run.workflow,
        trigger=run.trigger,
        queue=run.queue,
        status=_status(run, planned, views, scheduled),
        reason=_reason(
            run,
            manual,
            views,
            visible=visible,
            scheduled=scheduled,
            claimed=claimed,
            expired=expired,
            pending_dispatches=pending_dispatches,
            pending_results=pending_results,
        ),
        terminal=terminal,
        terminal_status=run.terminal_status,
        input=to_json_map(run.input),
        context=context,
        planned_runnables=planned,
        planned_runnable_keys=[r.runnable_key for r in planned],
        applied_runnables=applied,
        applied_runnable_keys=list(run.applied),
        attempts=views,
        visible_attempts=visible,
        scheduled_attempts=scheduled,
        claimed_attempts=claimed,
        expired_claims=expired,
        pending_dispatches=pending_dispatches,
        pending_results=pending_results,
        manual_state=manual,
        command_history=[_command(c) for c in run.command_history],
        attempt_history=_attempt_history(run) if include_history else [],
        parent_run=parent if isinstance(parent, dict) else None,
        child_runs=[to_json_map(c) for c in run.child_runs],
        dynamic_work=[to_json_map(w) for w in run.dynamic_work],
        deadline=deadlines[0] if deadlines else None,
        deadlines=deadlines,
        definition_version=run.definition_version,
        definition_fingerprint=run.definition_fingerprint,
        definition_matches=(None if spec is None else spec.matches(run.definition_fingerprint)),
        definition_source="runtime_spec" if run.spec is not None else "workflow",
        compensation=build_compensation_view(planned, applied, terminal=terminal),
        replayed_from_run_id=run.replayed_from_run_id,
        thread_revisions=ThreadRevisions(run=run.version, dispatch=queue_version),
        anomalies=_anomalies(run, run_id, queue_anomalies),
        anomaly_count=run.anomaly_count + len(_of_run(queue_anomalies, run_id)),
        next_visible_at=scheduled[0].visible_at if scheduled else None,
        error=to_json_map(run.error) if run.error is not None else None,
        started_at=run.started_at,
        updated_at=run.modified_on,
        ended_at=run.ended_at,
        as_of=now,
        history_included=include_history,
    )


# -- views -------------------------------------------------------------------------------


def _optional_map(value: object) -> JsonMap | None:
    return to_json_map(value) if isinstance(value, Mapping) else None


def _planned_views(run: WorkflowRun) -> list[RunnableView]:
    return [_runnable_view(r, run) for r in run.planned.values()]


def _runnable_view(runnable: JSONDict, run: WorkflowRun) -> RunnableView:
    key = str(runnable["runnable_key"])
    return RunnableView(
        runnable_key=key,
        step=str(runnable["step"]),
        attempt_number=int(runnable.get("attempt_number", 1)),
        idempotency_key=str(runnable.get("idempotency_key") or key),
        input=to_json_map(run.step_input(runnable)),
        visible_at=runnable["visible_at"],
        queue=str(runnable.get("queue", "")),
        action=runnable.get("action") if isinstance(runnable.get("action"), str) else None,
        recovery=_optional_map(runnable.get("recovery")),
        deferred=_optional_map(runnable.get("deferred")),
        deadline=_optional_map(runnable.get("deadline")),
        compensation=_optional_map(runnable.get("compensation")),
        dynamic=_optional_map(runnable.get("dynamic")),
        applied=key in run.applied,
    )


def _attempt_view(attempt: Attempt, run: WorkflowRun) -> AttemptView:
    planned = run.planned.get(attempt.runnable_key, {})
    applied = run.applied.get(attempt.runnable_key)
    return AttemptView(
        runnable_key=attempt.runnable_key,
        step=attempt.step,
        attempt_number=attempt.attempt_number,
        status=attempt.status,
        idempotency_key=attempt.idempotency_key,
        input=to_json_map(attempt.input if attempt.input is not None else run.step_input(planned)),
        visible_at=attempt.visible_at,
        claim_id=attempt.claim_id,
        owner_id=attempt.owner_id,
        lease_until=attempt.lease_until,
        result=_optional_map(attempt.result),
        error=_optional_map(attempt.error),
        completed_at=attempt.completed_at,
        wakeup_emitted=attempt.wakeup_emitted,
        applied=applied is not None,
        retry_of=attempt.retry_of,
        transition=_optional_map(applied.get("transition")) if applied else None,
        recovery=_optional_map(planned.get("recovery")),
        deferred=_optional_map(planned.get("deferred")),
        compensation=_optional_map(planned.get("compensation")),
        dynamic=_optional_map(planned.get("dynamic")),
        metadata=_optional_map(attempt.metadata),
    )


def _applied(run: WorkflowRun, include_history: bool) -> list[AppliedRunnable]:
    records = []
    for key, applied in run.applied.items():
        attempt_number = run.planned.get(key, {}).get("attempt_number")
        records.append(
            AppliedRunnable(
                runnable_key=key,
                step=str(applied["step"]),
                attempt_number=attempt_number if isinstance(attempt_number, int) else None,
                outcome=str(applied["outcome"]),
                transition=_optional_map(applied.get("transition")),
                error=_optional_map(applied.get("error")),
                applied_at=applied.get("applied_at"),
                result=_optional_map(applied.get("result")) if include_history else None,
            )
        )
    return records


def _attempt_history(run: WorkflowRun) -> list[AttemptRecord]:
    records = []
    for key, planned in run.planned.items():
        applied = run.applied.get(key)
        claim = applied.get("claim") if applied is not None else None
        if applied is not None:
            status: AttemptHistoryStatus = "applied"
        else:
            status = "fenced" if run.is_terminal else "pending"
        records.append(
            AttemptRecord(
                runnable_key=key,
                step=str(planned["step"]),
                attempt_number=int(planned.get("attempt_number", 1)),
                visible_at=planned["visible_at"],
                status=status,
                outcome=str(applied["outcome"]) if applied is not None else None,
                applied_at=applied.get("applied_at") if applied is not None else None,
                claim=ClaimRecord.model_validate(claim) if isinstance(claim, dict) else None,
            )
        )
    return records


def _command(command: JSONDict) -> CommandRecord:
    payload = to_json_map(command.get("payload"))
    comment = command.get("comment")
    return CommandRecord(
        signal_type=str(command["signal_type"]),
        idempotency_key=command.get("idempotency_key"),
        actor=command.get("actor"),
        occurred_at=command.get("occurred_at"),
        payload_digest=json_digest(payload),
        payload=payload,
        metadata=to_json_map(command.get("metadata")),
        comment=comment if isinstance(comment, str) else None,
    )


def _manual_state(state: JSONDict | None) -> ManualState | None:
    if state is None:
        return None
    return ManualState(
        step=str(state["step"]),
        kind=str(state["kind"]),
        paused_at=state.get("paused_at"),
        metadata=to_json_map(state.get("metadata")),
    )


def _open_deadlines(
    planned: list[RunnableView], manual: JSONDict | None, now: datetime
) -> list[DeadlineView]:
    found = [
        read_deadline(r.deadline, step=r.step, runnable_key=r.runnable_key, now=now)
        for r in planned
        if not r.applied and r.deadline is not None
    ]
    if manual is not None:
        metadata = manual.get("metadata")
        raw = manual.get("deadline") or (
            metadata.get("deadline") if isinstance(metadata, dict) else None
        )
        found.append(read_deadline(raw, step=str(manual["step"]), runnable_key=None, now=now))
    deadlines = [d for d in found if d is not None]
    deadlines.sort(key=lambda d: (d.due_at, d.step))
    return deadlines


def _of_run(anomalies: Sequence[Mapping[str, object]], run_id: str) -> list[Mapping[str, object]]:
    return [a for a in anomalies if str(a.get("run_id")) == run_id]


def _anomalies(
    run: WorkflowRun, run_id: str, queue_anomalies: Sequence[Mapping[str, object]]
) -> list[JsonMap]:
    tagged = [{**to_json_map(a), "source": "workflow"} for a in run.anomalies]
    tagged += [{**to_json_map(a), "source": "dispatch"} for a in _of_run(queue_anomalies, run_id)]
    return tagged


# -- status and reason -------------------------------------------------------------------


def _status(
    run: WorkflowRun,
    planned: list[RunnableView],
    views: list[AttemptView],
    scheduled: list[AttemptView],
) -> SnapshotStatus:
    if run.terminal_status is not None:
        return SnapshotStatus(run.terminal_status)
    if run.manual_state is not None:
        return SnapshotStatus.PAUSED
    if any(a.is_retry for a in scheduled):
        return SnapshotStatus.RETRYING
    if views or any(not r.applied for r in planned):
        return SnapshotStatus.RUNNING
    return SnapshotStatus.PENDING


def _reason(
    run: WorkflowRun,
    manual: ManualState | None,
    views: list[AttemptView],
    *,
    visible: list[AttemptView],
    scheduled: list[AttemptView],
    claimed: list[AttemptView],
    expired: list[AttemptView],
    pending_dispatches: list[RunnableView],
    pending_results: list[AttemptView],
) -> SnapshotReason:
    """The first matching rule of api catalog 5.1, with retries told apart at rule 8."""
    if run.is_terminal:
        return SnapshotReason.TERMINAL
    if manual is not None:
        return SnapshotReason.MANUAL_INTERVENTION_REQUIRED
    if pending_results:
        return SnapshotReason.COMPLETED_RESULT_PENDING_APPLY
    if pending_dispatches:
        return SnapshotReason.PLANNED_DISPATCH_PENDING_SCHEDULE
    if expired:
        return SnapshotReason.EXPIRED_CLAIM
    if visible:
        return SnapshotReason.ATTEMPT_VISIBLE
    if claimed:
        return SnapshotReason.ATTEMPT_CLAIMED
    if scheduled:
        first = scheduled[0]
        if first.deferred is not None:
            return SnapshotReason.DEFERRED_CONTINUATION
        if first.is_retry:
            return SnapshotReason.WAITING_FOR_RETRY
        return SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER
    if run.planned and all(k in run.applied for k in run.planned):
        return SnapshotReason.IDLE
    if not views:
        return SnapshotReason.RUN_STARTED
    return SnapshotReason.WAITING_FOR_DISPATCH
