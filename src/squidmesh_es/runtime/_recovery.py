"""Recovery: finish decisions a partial history left half-done.

Our own commits write a decision's run and queue facts together, so these gaps come only
from histories written by a crash of an older version, another writer, or a hand repair:

1. planned but never scheduled: schedule the missing attempts;
2. completed or failed but never applied: apply the result and plan what follows;
3. ended but still open on the queue: close it, so its attempts are fenced.

The passes run in that order, per run, each run in one commit. Running recovery again finds
nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
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


@dataclass
class RecoveryReport:
    """What a recovery pass repaired, by runnable key or run id."""

    scheduled: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    closed_runs: list[str] = field(default_factory=list)
    skipped_runs: list[str] = field(default_factory=list)
    """Runs whose workflow this runtime has not registered, so it cannot judge their steps."""

    @property
    def repaired(self) -> bool:
        """Whether anything was written."""
        return bool(self.scheduled or self.applied or self.closed_runs)


def recover(
    mesh: SquidMesh, *, queue: str | None, run_id: UUID | str | None, now: datetime
) -> RecoveryReport:
    """Repair the runs of ``queue`` (or just ``run_id``) and report what was written."""
    report = RecoveryReport()
    queue_name = queue or mesh.default_queue
    if run_id is not None:
        run = mesh.get_run(run_id)
        run_ids = [str(run.run_id)]
        queue_name = queue or run.queue
    else:
        run_ids = list(mesh.get_queue(queue_name, now=now).queued_runs)
    for rid in run_ids:
        _recover_run(mesh, queue_name, rid, now=now, report=report)
    return report


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
