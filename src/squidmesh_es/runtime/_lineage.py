"""Runs made from other runs: replays of a finished run, and child runs started by a step."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from squidmesh_es.domain import JOURNAL_NAMESPACE, JSONDict, WorkflowRun
from squidmesh_es.errors import (
    Conflict,
    InvalidReplaySource,
    StaleClaim,
    UnsafeReplay,
)
from squidmesh_es.redaction import redact_json
from squidmesh_es.runtime._execution import CONFLICT_RETRIES, RACE_SIGNS, after_commit, run_moved
from squidmesh_es.runtime._starting import build_request, find_run, prepare_start, start_run
from squidmesh_es.workflow import JSONValue, StepContext, Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["replay_blockers", "replay_run", "start_child"]


def replay_blockers(run: WorkflowRun) -> list[str]:
    """Completed steps whose persisted recovery policy makes repeating them unsafe."""
    blocking = []
    for applied in run.applied.values():
        if applied["outcome"] != "ok":
            continue
        recovery = run.planned[applied["runnable_key"]].get("recovery") or {}
        if recovery.get("irreversible") or recovery.get("compensatable") is False:
            blocking.append(str(applied["step"]))
    return sorted(set(blocking))


def replay_run(
    mesh: SquidMesh,
    run_id: UUID | str,
    *,
    allow_irreversible: bool,
    idempotency_key: str | None,
    now: datetime,
    actor: str | None = None,
    comment: str | None = None,
    metadata: Mapping[str, JSONValue] | None = None,
) -> WorkflowRun:
    """Start a fresh run from the source's trigger and resolved input.

    The new run's id derives from the source and the key (default ``replay_run:<run_id>``,
    as in Squid Mesh), so replaying with the same key returns the same new run and writes
    nothing, even if the source or the registry changed since; another key replays again.

    The receipt goes where Squid Mesh puts it: first in the new run's command history, as
    a ``replay_run`` command whose payload names the source (``run_id``), the
    ``allow_irreversible`` flag and the blocking steps it overrode, with ``actor``,
    ``comment``, ``metadata`` and ``now`` as its time. The source's journal is left alone:
    it may have ended, and the new run's ``replayed_from_run_id`` already links the two.

    Raises:
        RunNotFound, InvalidRunId: no such source run.
        InvalidReplaySource: the source ran a runtime-authored spec, or its workflow is
            not registered here.
        DefinitionMismatch: the workflow's definition changed since the source started;
            its input may not fit the new one.
        UnsafeReplay: completed steps are irreversible or not compensatable, and
            ``allow_irreversible`` is not exactly ``True``.
        Conflict: the key's run id is taken by a run that is not this replay.
    """
    source = mesh.get_run(run_id)
    key = idempotency_key or f"replay_run:{source.run_id}"
    new_id = uuid5(JOURNAL_NAMESPACE, f"replay:{source.run_id}:{key}")
    earlier = find_run(mesh, new_id)
    if (
        earlier is not None
        and earlier.replayed_from_run_id == str(source.run_id)
        and earlier.find_command("replay_run", key) is not None
    ):
        return earlier  # a repeated delivery: the first one's result, no second receipt
    if source.spec is not None:
        raise InvalidReplaySource(source.run_id, "runtime_spec")
    if source.data_forgotten_at is not None:
        raise InvalidReplaySource(source.run_id, "data_forgotten")
    definition = mesh.definition(source)
    if definition is None or definition.workflow is None:
        raise InvalidReplaySource(source.run_id, "workflow")
    workflow = definition.workflow
    mismatch = definition.changed(source)  # its input was checked against another graph
    if mismatch is not None:
        raise mismatch
    blocking = replay_blockers(source)
    if blocking and allow_irreversible is not True:
        raise UnsafeReplay(source.run_id, blocking)
    request = build_request(
        mesh,
        workflow,
        source.input,
        trigger=source.trigger,
        run_id=new_id,
        queue=source.queue,
        idempotency_key=key,
        metadata=metadata,
        context=_replayed_context(source),
        signal_type="replay_run",
        replayed_from_run_id=source.run_id,
        command_payload={
            "run_id": str(source.run_id),
            "allow_irreversible": allow_irreversible is True,
            "blocking_steps": [*blocking],
        },
        actor=actor,
        comment=comment,
        now=now,
    )
    return start_run(mesh, request, now=now).run


def _replayed_context(source: WorkflowRun) -> JSONDict:
    """The source's schedule context without its idempotency identity, as Squid Mesh does.

    Steps of a replayed cron run still see the window they were scheduled for; the copy no
    longer claims the schedule key, which belongs to the source.
    """
    schedule = source.start_context.get("schedule")
    if not isinstance(schedule, dict):
        return {}
    kept = {k: v for k, v in schedule.items() if k not in ("idempotency_key", "idempotency")}
    return {"schedule": kept}


def start_child(
    mesh: SquidMesh,
    ctx: StepContext,
    workflow: type[Workflow],
    payload: Mapping[str, JSONValue],
    *,
    child_key: str,
    trigger: str | None,
    queue: str | None,
    metadata: Mapping[str, JSONValue] | None,
    now: datetime,
) -> WorkflowRun:
    """Start the child run ``child_key`` of the step ``ctx`` runs, or return it if started.

    The child's id derives from parent run, parent step, child workflow, trigger and key, so
    a retried parent step finds the same child. The child start and the parent's link
    commit together. ``metadata`` (redacted) goes on both sides: the parent's link and the
    child's ``parent_run``.

    Raises:
        RunTerminal: the parent run ended.
        StaleClaim: ``ctx`` describes an attempt whose result the parent already applied.
    """
    trigger_name = workflow.resolve_trigger(trigger).name
    child_id = uuid5(
        JOURNAL_NAMESPACE,
        f"child:{ctx.run_id}:{ctx.step}:{workflow.name}:{trigger_name}:{child_key}",
    )
    origin: JSONDict = {
        "run_id": str(ctx.run_id),
        "step": ctx.step,
        "runnable_key": ctx.runnable_key,
        "attempt": ctx.attempt,
        "child_key": child_key,
    }
    for _ in range(CONFLICT_RETRIES):
        parent = mesh.get_run(ctx.run_id)
        if ctx.runnable_key in parent.applied:
            raise StaleClaim(runnable_key=ctx.runnable_key, reason="parent_step_applied")
        request = build_request(
            mesh,
            workflow,
            payload,
            trigger=trigger_name,
            run_id=child_id,
            queue=parent.queue if queue is None else queue,
            idempotency_key=f"child:{child_key}",
            metadata=metadata,
            context={"parent": {**origin, "metadata": redact_json(dict(metadata or {}))}},
            now=now,
        )
        linked = parent.record_child_run(
            child_run_id=child_id,
            child_workflow=workflow.name,
            child_trigger=trigger_name,
            child_key=child_key,
            origin=origin,
            metadata=dict(metadata or {}),
            now=now,
        )
        try:
            prepared = prepare_start(mesh, request, now=now)
        except RACE_SIGNS:
            if run_moved(mesh, child_id, None):
                continue  # a twin started the child between our reads: decide again
            raise
        if not linked and prepared.settled is None:
            return prepared.run
        try:
            mesh.save(parent, *prepared.aggregates)
        except Conflict:
            continue
        if prepared.settled is not None:
            after_commit(mesh, prepared.settled)
        return prepared.run
    raise Conflict("journal kept moving while starting a child run", run_id=str(child_id))
