"""Operator controls on a living run; each commits its receipt with its effect.

A control with an idempotency key that the run already received is a duplicate delivery:
it returns the run as it is and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import (
    DispatchQueue,
    JSONDict,
    ManualAction,
    TerminalStatus,
    WorkflowRun,
)
from squidmesh_es.domain._planner import resolve_boundary
from squidmesh_es.errors import Conflict, ManualStepMismatch, RunTerminal
from squidmesh_es.redaction import redact_json
from squidmesh_es.runtime._execution import (
    CONFLICT_RETRIES,
    RACE_SIGNS,
    Settled,
    after_commit,
    carry_out,
    run_moved,
)
from squidmesh_es.workflow import Outcome

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "SIGNAL_OF_ACTION",
    "cancel_run",
    "decide_cancel",
    "decide_manual",
    "resolve_manual_run",
]

SIGNAL_OF_ACTION = {
    ManualAction.RESUMED: "resume_run",
    ManualAction.APPROVED: "approve_run",
    ManualAction.REJECTED: "reject_run",
}
"""The command each manual resolution is received as."""


def cancel_run(
    mesh: SquidMesh,
    run_id: UUID | str,
    *,
    actor: str | None,
    reason: str | None,
    idempotency_key: str | None,
    now: datetime,
    metadata: JSONDict | None = None,
) -> WorkflowRun:
    """End the run as cancelled and fence its queued attempts, in one commit.

    A worker already running one of its steps finishes, but its completion is refused.
    ``metadata`` (the signal's) is kept on the receipt, as for every other command.

    Raises:
        RunNotFound, InvalidRunId: no such run.
        RunTerminal: the run had already ended (and this is not a repeat of the cancel).
    """
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        queue = mesh.get_queue(run.dispatch_queue, now=now)
        settled = decide_cancel(
            run,
            queue,
            actor=actor,
            reason=reason,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=now,
        )
        if settled is None:
            return run
        try:
            mesh.save(run, queue)
        except Conflict:
            continue
        return run
    raise Conflict("journal kept moving while cancelling", run_id=str(run_id))


def decide_cancel(
    run: WorkflowRun,
    queue: DispatchQueue,
    *,
    actor: str | None,
    reason: str | None,
    idempotency_key: str | None,
    metadata: JSONDict | None,
    now: datetime,
) -> Settled | None:
    """Record the cancel on ``run`` and ``queue`` (not saved); ``None`` for a duplicate.

    Raises:
        RunTerminal: the run had already ended (and this is not a repeat of the cancel).
    """
    if idempotency_key is not None and run.find_command("cancel_run", idempotency_key):
        return None
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    run.receive_command(
        "cancel_run",
        payload={"run_id": str(run.run_id)},
        metadata=metadata,
        idempotency_key=idempotency_key,
        actor=actor,
        comment=reason,
        now=now,
    )
    run.end(TerminalStatus.CANCELLED, now=now, error={"code": "cancelled", "reason": reason})
    queue.close_run(run.run_id, status=TerminalStatus.CANCELLED.value, now=now)
    return Settled(runs={str(run.run_id): run}, queue=queue)


def resolve_manual_run(
    mesh: SquidMesh,
    run_id: UUID | str,
    action: ManualAction,
    *,
    actor: str | None,
    comment: str | None,
    metadata: JSONDict | None,
    idempotency_key: str | None,
    now: datetime,
) -> WorkflowRun:
    """Resume, approve or reject the boundary the run is paused at, and continue the run.

    The receipt, the resolution, the boundary's result and what follows it (successor
    attempts, or the run's end) commit together. A twin resolution committing meanwhile
    makes this one decide again: with the same idempotency key it returns the run as the
    twin left it; without, it meets the run no longer paused (`ManualStepMismatch`).

    An approval's decision, approved or rejected, lands in the run context under the step's
    output key; a rejection then takes the step's error route, whose step can read who
    rejected and why.

    Raises:
        RunNotFound, InvalidRunId: no such run.
        RunTerminal: the run ended.
        ManualStepMismatch: the run is not paused at a boundary this action resolves.
        InvalidArgument: this runtime does not have the run's workflow registered.
    """
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        seen = run.version
        queue = mesh.get_queue(run.dispatch_queue, now=now)
        try:
            settled = decide_manual(
                mesh,
                run,
                queue,
                action,
                actor=actor,
                comment=comment,
                metadata=metadata,
                idempotency_key=idempotency_key,
                now=now,
            )
        except RACE_SIGNS:
            if run_moved(mesh, run.run_id, seen):
                continue  # a twin resolved it between our two reads: decide again
            raise
        if settled is None:
            return run
        try:
            mesh.save(run, queue)
        except Conflict:
            continue
        after_commit(mesh, settled)
        return run
    raise Conflict("journal kept moving while resolving", run_id=str(run_id))


def decide_manual(
    mesh: SquidMesh,
    run: WorkflowRun,
    queue: DispatchQueue,
    action: ManualAction,
    *,
    actor: str | None,
    comment: str | None,
    metadata: JSONDict | None,
    idempotency_key: str | None,
    now: datetime,
) -> Settled | None:
    """Record the resolution and what follows it on ``run`` and ``queue`` (not saved).

    Returns the effects due after the commit, or ``None`` for a duplicate delivery.

    Raises:
        RunTerminal, ManualStepMismatch, InvalidArgument: as `resolve_manual_run`.
    """
    signal = SIGNAL_OF_ACTION[action]
    if idempotency_key is not None and run.find_command(signal, idempotency_key):
        return None
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    boundary = run.manual_state
    if boundary is None or boundary["kind"] != action.kind.value:
        actual = None if boundary is None else str(boundary["kind"])
        raise ManualStepMismatch(run.run_id, expected=action.kind.value, actual=actual)
    definition = mesh.require_definition(run)
    # The decision is stored as the boundary's result and flows into the context and
    # the successors' inputs: redact it as the receipt is redacted.
    decision: JSONDict = {
        "decision": action.value,
        "actor": actor,
        "comment": comment,
        "metadata": redact_json(metadata or {}),
        "decided_at": now.isoformat(),
    }
    run.receive_command(
        signal,
        payload={"run_id": str(run.run_id), "step": boundary["step"]},
        metadata=metadata,
        idempotency_key=idempotency_key,
        actor=actor,
        comment=comment,
        now=now,
    )
    run.resolve_manual(action, now=now, result=decision, metadata=metadata)
    rejected = action is ManualAction.REJECTED
    progress = resolve_boundary(
        definition.spec,
        run,
        boundary,
        outcome=Outcome.ERROR if rejected else Outcome.OK,
        output=None if action is ManualAction.RESUMED else decision,
        error={"code": "rejected", **decision} if rejected else None,
        now=now,
    )
    settled = Settled(runs={str(run.run_id): run}, queue=queue)
    carry_out(mesh, queue, run, progress, now=now, settled=settled)
    return settled
