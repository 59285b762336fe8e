"""Operator controls on a living run; each commits its receipt with its effect.

A control with an idempotency key that the run already received is a duplicate delivery:
it returns the run as it is and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import TerminalStatus, WorkflowRun
from squidmesh_es.errors import Conflict, RunTerminal
from squidmesh_es.runtime._execution import CONFLICT_RETRIES

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["cancel_run"]


def cancel_run(
    mesh: SquidMesh,
    run_id: UUID | str,
    *,
    actor: str | None,
    reason: str | None,
    idempotency_key: str | None,
    now: datetime,
) -> WorkflowRun:
    """End the run as cancelled and fence its queued attempts, in one commit.

    A worker already running one of its steps finishes, but its completion is refused.

    Raises:
        RunNotFound, InvalidRunId: no such run.
        RunTerminal: the run had already ended (and this is not a repeat of the cancel).
    """
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        if idempotency_key is not None and run.find_command("cancel_run", idempotency_key):
            return run
        if run.is_terminal:
            raise RunTerminal(run.run_id, run.terminal_status)
        run.receive_command(
            "cancel_run",
            payload={"run_id": str(run.run_id)},
            idempotency_key=idempotency_key,
            actor=actor,
            comment=reason,
            now=now,
        )
        run.end(TerminalStatus.CANCELLED, now=now, error={"code": "cancelled", "reason": reason})
        queue = mesh.get_queue(run.queue, now=now)
        queue.close_run(run.run_id, status=TerminalStatus.CANCELLED.value, now=now)
        try:
            mesh.save(run, queue)
        except Conflict:
            continue
        return run
    raise Conflict("journal kept moving while cancelling", run_id=str(run_id))
