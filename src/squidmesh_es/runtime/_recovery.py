"""Recovery: finish decisions a partial history left half-done.

Our own commits write a decision's run and queue facts together, so these gaps come only
from histories written by a crash of an older version, another writer, or a hand repair:

1. planned but never scheduled: schedule the missing attempts;
2. completed or failed but never applied: apply the result and plan what follows;
3. ended but still open on the queue: close it, so its attempts are fenced.

The passes run in that order, per run, each run in one commit. Running recovery again finds
nothing to do.

A pass never reads every open run. It reads only the runs that may need repair, found
through two indexes:

- the queue's own index of results it recorded but the run never applied (gap 2);
- the journal's notification log after the queue's ``recovered_to`` position, filtered to
  the few event types that can open gap 1 or 3: keys a run planned (``RunnablesPlanned``)
  that no ``AttemptScheduled`` (or retry) matched, and runs that ended (``RunEnded``) with no
  ``RunClosed``. Our own commits write both halves together, so in a healthy journal the
  candidates are only runs paused at a manual boundary or a wait, planned since the last
  pass. Once a pass read `CHECKPOINT_EVERY` notifications, the position moves to the log's
  head (``RecoveryChecked``), except past a run this process could not judge, whose events
  are read again next time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from squidmesh_es.domain import AttemptStatus, DispatchQueue, Runnable, WorkflowRun
from squidmesh_es.domain._planner import Progress, apply_outcome
from squidmesh_es.errors import Conflict, RunNotFound
from squidmesh_es.runtime._definitions import RunDefinition
from squidmesh_es.runtime._execution import (
    CONFLICT_RETRIES,
    Settled,
    after_commit,
    carry_out,
    schedule,
)
from squidmesh_es.workflow import Outcome, WorkflowSpec

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["RecoveryReport", "recover"]

logger = logging.getLogger("squidmesh_es.runtime")

PAGE = 1000
"""Notifications read per query while looking for gaps."""

CHECKPOINT_EVERY = 1000
"""A pass that read this many notifications records how far it got (`RecoveryChecked`).

Shorter windows are read again by the next pass rather than written down: a pass with
nothing to repair then writes nothing, and no pass reads much more than this plus what was
written since the previous one.
"""

_GAP_TOPICS = (
    WorkflowRun.RunnablesPlanned.TOPIC,
    WorkflowRun.RunEnded.TOPIC,
    DispatchQueue.AttemptScheduled.TOPIC,
    DispatchQueue.AttemptFailed.TOPIC,
    DispatchQueue.RunClosed.TOPIC,
)
"""The events that open a run-side gap, and those that close it in the same commit."""


@dataclass
class RecoveryReport:
    """What a recovery pass repaired, by runnable key or run id."""

    scheduled: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    closed_runs: list[str] = field(default_factory=list)
    skipped_runs: list[str] = field(default_factory=list)
    """Runs whose workflow this runtime has not registered, so it cannot judge their steps."""
    examined_runs: int = 0
    """Runs read because they may need repair (not every open run)."""
    events_read: int = 0
    """Notifications read from the journal's log since the previous pass."""
    seconds: float = 0.0
    """How long the pass took."""

    @property
    def repaired(self) -> bool:
        """Whether anything was written."""
        return bool(self.scheduled or self.applied or self.closed_runs)


def recover(
    mesh: SquidMesh, *, queue: str | None, run_id: UUID | str | None, now: datetime
) -> RecoveryReport:
    """Repair the runs of ``queue`` (or just ``run_id``) and report what was written."""
    began = time.perf_counter()
    report = RecoveryReport()
    queue_name = queue or mesh.default_queue
    if run_id is not None:
        run = mesh.get_run(run_id)
        queue_name = run.dispatch_queue if queue in (None, run.queue) else queue
        report.examined_runs = 1
        _recover_run(mesh, queue_name, str(run.run_id), now=now, report=report)
    else:
        for partition in mesh.queue_partitions_of(queue_name):
            _recover_queue(mesh, partition, now=now, report=report)
    report.seconds = time.perf_counter() - began
    logger.info(
        "recovery of %s examined %d runs and %d events in %.3f s",
        queue_name if run_id is None else f"run {run_id}",
        report.examined_runs,
        report.events_read,
        report.seconds,
        extra={"queue": queue_name},
    )
    return report


def _recover_queue(
    mesh: SquidMesh, queue_name: str, *, now: datetime, report: RecoveryReport
) -> None:
    queue = mesh.get_queue(queue_name, now=now)
    head = mesh.recorder.max_notification_id() or 0
    read_before = report.events_read
    candidates = _run_side_candidates(mesh, queue, head, report)
    for rid in queue.runs_with_unapplied_results():
        candidates.setdefault(rid, head)
    report.examined_runs += len(candidates)
    for rid in candidates:
        _recover_run(mesh, queue_name, rid, now=now, report=report)
    if report.events_read - read_before >= CHECKPOINT_EVERY:
        # A skipped run keeps its gap: read its events again next time.
        held = [candidates[rid] - 1 for rid in report.skipped_runs if rid in candidates]
        _check(mesh, queue_name, min([head, *held]), now=now)


def _run_side_candidates(
    mesh: SquidMesh, queue: DispatchQueue, head: int, report: RecoveryReport
) -> dict[str, int]:
    """Open runs of ``queue`` with a gap-opening event since the last pass, and its position."""
    planned: dict[str, tuple[str, int]] = {}
    scheduled: set[str] = set()
    ended: dict[str, int] = {}
    closed: set[str] = set()
    position = queue.recovered_to
    while position < head:
        page = mesh.recorder.select_notifications(
            position, PAGE, stop=head, topics=_GAP_TOPICS, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            event: Any = mesh.mapper.to_domain_event(notification)
            rid = str(notification.originator_id)
            if isinstance(event, WorkflowRun.RunnablesPlanned):
                for runnable in event.runnables:
                    key = runnable.get("runnable_key")
                    if isinstance(key, str):
                        planned.setdefault(key, (rid, notification.id))
            elif isinstance(event, WorkflowRun.RunEnded):
                ended.setdefault(rid, notification.id)
            elif isinstance(event, DispatchQueue.AttemptScheduled):
                scheduled.add(event.runnable_key)
            elif isinstance(event, DispatchQueue.AttemptFailed):
                scheduled.add(getattr(event, "retry_runnable_key", None) or "")
            elif isinstance(event, DispatchQueue.RunClosed):
                closed.add(event.run_id)
        report.events_read += len(page)
        position = page[-1].id
    candidates: dict[str, int] = {}
    for key, (rid, at) in planned.items():
        if key not in scheduled and rid in queue.queued_runs:
            candidates[rid] = min(at, candidates.get(rid, at))
    for rid, at in ended.items():
        if rid not in closed and rid in queue.queued_runs:
            candidates[rid] = min(at, candidates.get(rid, at))
    return candidates


def _check(mesh: SquidMesh, queue_name: str, position: int, *, now: datetime) -> None:
    """Move the queue's recovery position to ``position`` (best effort: a pass may repeat)."""
    for _ in range(CONFLICT_RETRIES):
        queue = mesh.get_queue(queue_name, now=now)
        if not queue.check_recovery(position, now=now):
            return
        try:
            mesh.save(queue)
        except Conflict:
            continue
        return


def _recover_run(
    mesh: SquidMesh, queue_name: str, run_id: str, *, now: datetime, report: RecoveryReport
) -> None:
    for _ in range(CONFLICT_RETRIES):
        try:
            run = mesh.get_run(run_id)
        except RunNotFound:
            report.skipped_runs.append(run_id)
            return
        queue = mesh.get_queue(queue_name, now=now)
        if run.is_terminal:
            if queue.is_closed(run_id) or run_id not in queue.queued_runs:
                return
            assert run.terminal_status is not None
            queue.close_run(run_id, status=run.terminal_status, now=now)
            written = _Written(closed=[run_id])
            settled = Settled()
        else:
            definition = mesh.definition(run)
            if definition is None:
                report.skipped_runs.append(run_id)
                return
            settled = Settled(queue=queue, runs={run_id: run})
            written = _Written(scheduled=_schedule_missing(definition, queue, run, now=now))
            written.applied = _apply_finished(
                mesh, definition.spec, queue, run, now=now, settled=settled
            )
        if not written.any:
            return
        try:
            mesh.save(queue, run)
        except Conflict:
            continue
        after_commit(mesh, settled)
        report.scheduled.extend(written.scheduled)
        report.applied.extend(written.applied)
        report.closed_runs.extend(written.closed)
        return
    raise Conflict("journal kept moving while recovering", run_id=run_id)


@dataclass
class _Written:
    scheduled: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.scheduled or self.applied or self.closed)


def _schedule_missing(
    definition: RunDefinition, queue: DispatchQueue, run: WorkflowRun, *, now: datetime
) -> list[str]:
    """Schedule planned work that the queue has never seen.

    Worker steps, and built-ins planned for later (a wait's successor): a built-in due at
    once was carried out when planned, so the only other pending one is the manual boundary
    the run is paused at, which waits for an operator, not a worker.
    """
    scheduled = []
    boundary = (run.manual_state or {}).get("metadata") or {}
    for planned in run.pending_runnables():
        key = str(planned["runnable_key"])
        if key in queue.attempts or key in queue.finished:
            continue
        if not definition.is_custom(planned) and key == boundary.get("runnable_key"):
            continue
        schedule(queue, run, Runnable.from_state(planned), now=now)
        scheduled.append(key)
    return scheduled


def _apply_finished(
    mesh: SquidMesh,
    spec: WorkflowSpec,
    queue: DispatchQueue,
    run: WorkflowRun,
    *,
    now: datetime,
    settled: Settled,
) -> list[str]:
    """Apply results the queue recorded but the run never applied, in claim order."""
    applied = []
    for attempt in queue.attempts_of(run.run_id):
        if run.is_terminal:
            break  # an earlier result ended the run: its end closed the run on the queue
        if attempt.status not in (AttemptStatus.COMPLETED, AttemptStatus.FAILED):
            continue
        key = attempt.runnable_key
        progress = Progress()
        if key not in run.applied:
            if attempt.status is AttemptStatus.COMPLETED:
                progress = apply_outcome(
                    spec, run, key, outcome=Outcome.OK, output=attempt.result or {}, now=now
                )
            else:
                progress = apply_outcome(
                    spec, run, key, outcome=Outcome.ERROR, error=attempt.error, now=now
                )
        queue.mark_applied(key, now=now)
        carry_out(mesh, queue, run, progress, now=now, settled=settled)
        applied.append(key)
    return applied
