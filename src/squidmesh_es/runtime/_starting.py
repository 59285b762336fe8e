"""Starting runs: validate first, then commit the start, its receipt and first work together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4, uuid5

from squidmesh_es.domain import (
    JOURNAL_NAMESPACE,
    JSONDict,
    WorkflowRun,
    check_queue_name,
    parse_run_id,
)
from squidmesh_es.domain._planner import plan_entry
from squidmesh_es.errors import Conflict, RunNotFound
from squidmesh_es.runtime._execution import CONFLICT_RETRIES, Settled, after_commit, schedule
from squidmesh_es.runtime._notifier import ScheduledAttempt
from squidmesh_es.workflow import JSONValue, Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["StartRequest", "start_run"]


@dataclass(frozen=True)
class StartRequest:
    """A validated request to start a run: what an idempotent repeat must match."""

    workflow: type[Workflow]
    trigger: str
    input: JSONDict
    run_id: UUID
    queue: str
    idempotency_key: str | None
    metadata: JSONDict
    context: JSONDict

    def matches(self, run: WorkflowRun) -> bool:
        """Whether ``run`` was started by this same request (a duplicate delivery)."""
        receipt = run.command_history[0] if run.command_history else {}
        return (
            run.workflow == self.workflow.name
            and run.trigger == self.trigger
            and run.input == self.input
            and run.queue == self.queue
            and receipt.get("idempotency_key") == self.idempotency_key
        )


def build_request(
    mesh: SquidMesh,
    workflow: type[Workflow],
    payload: Mapping[str, JSONValue],
    *,
    trigger: str | None,
    run_id: UUID | str | None,
    queue: str | None,
    idempotency_key: str | None,
    metadata: Mapping[str, JSONValue] | None,
    context: JSONDict | None = None,
    now: datetime,
) -> StartRequest:
    """Check everything about a start before anything is written.

    Without a ``run_id``, an ``idempotency_key`` derives one, so a repeated start with the
    same key finds the first run; with neither, the run gets a fresh id.

    Raises:
        InvalidArgument: the workflow, queue or metadata is unusable.
        InvalidTrigger: the trigger is unknown, or missing while the workflow has several.
        PayloadValidationError: the payload breaks the workflow's contract.
        InvalidRunId: ``run_id`` is not a UUID.
    """
    mesh.workflows.register(workflow)
    trigger_name = workflow.resolve_trigger(trigger).name
    run_input = workflow.validate_payload(payload, trigger_name, now=now)
    queue_name = check_queue_name(queue or mesh.default_queue)
    if run_id is not None:
        rid = parse_run_id(run_id)
    elif idempotency_key is not None:
        rid = uuid5(JOURNAL_NAMESPACE, f"start:{workflow.name}:{trigger_name}:{idempotency_key}")
    else:
        rid = uuid4()
    return StartRequest(
        workflow=workflow,
        trigger=trigger_name,
        input=run_input,
        run_id=rid,
        queue=queue_name,
        idempotency_key=idempotency_key,
        metadata=dict(metadata or {}),
        context=context or {},
    )


def start_run(mesh: SquidMesh, request: StartRequest, *, now: datetime) -> WorkflowRun:
    """Commit the run's start, its receipt, its entry runnables and their attempts at once.

    A run that already exists under the request's id is returned when the same request
    started it.

    Raises:
        Conflict: the run id belongs to a different request.
    """
    spec = request.workflow.to_spec()
    for _ in range(CONFLICT_RETRIES):
        existing = _existing(mesh, request.run_id)
        if existing is not None:
            if request.matches(existing):
                return existing
            raise Conflict(
                "run id already used by a different start request", run_id=str(request.run_id)
            )
        run = WorkflowRun.start(
            run_id=request.run_id,
            workflow=request.workflow.name,
            trigger=request.trigger,
            input=request.input,
            queue=request.queue,
            context=request.context,
            definition_fingerprint=spec.fingerprint,
            definition_version=spec.version,
            now=now,
        )
        run.receive_command(
            "start_run",
            payload={"workflow": request.workflow.name, "trigger": request.trigger},
            metadata=request.metadata,
            idempotency_key=request.idempotency_key,
            now=now,
        )
        progress = plan_entry(spec, run, now=now)
        queue = mesh.get_queue(request.queue, now=now)
        queue.enqueue_run(run.run_id, now=now)
        settled = Settled(runs={str(run.run_id): run}, queue=queue)
        if progress.ended is not None:
            queue.close_run(run.run_id, status=progress.ended.value, now=now)
        for runnable in progress.to_schedule:
            schedule(queue, run, runnable, now=now)
            settled.scheduled.append(
                ScheduledAttempt(
                    str(run.run_id), runnable.runnable_key, queue.queue, runnable.visible_at
                )
            )
        settled.logs.extend((record, str(run.run_id), run.workflow) for record in progress.logs)
        try:
            mesh.save(run, queue)
        except Conflict:
            continue
        after_commit(mesh, settled)
        return run
    raise Conflict("journal kept moving while starting", run_id=str(request.run_id))


def _existing(mesh: SquidMesh, run_id: UUID) -> WorkflowRun | None:
    try:
        return mesh.get_run(run_id)
    except RunNotFound:
        return None
