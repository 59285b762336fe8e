"""Starting runs: validate first, then commit the start, its receipt and first work together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4, uuid5

from squidmesh_es.domain import (
    JOURNAL_NAMESPACE,
    DispatchQueue,
    JSONDict,
    WorkflowRun,
    check_queue_name,
    parse_run_id,
    partition_queue,
)
from squidmesh_es.domain._planner import plan_entry
from squidmesh_es.errors import Conflict, InvalidArgument, RunIdTaken, RunNotFound
from squidmesh_es.runtime._execution import (
    CONFLICT_RETRIES,
    RACE_SIGNS,
    Settled,
    after_commit,
    carry_out,
    run_moved,
)
from squidmesh_es.runtime._telemetry import capture_context, conflict_retried, start_span
from squidmesh_es.workflow import (
    ActionRegistry,
    JSONValue,
    Workflow,
    WorkflowSpec,
    is_json_value,
    validate_spec,
)

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "PreparedStart",
    "StartRequest",
    "build_request",
    "build_spec_request",
    "check_idempotency_key",
    "check_metadata",
    "find_run",
    "prepare_start",
    "start_run",
]


@dataclass(frozen=True)
class StartRequest:
    """A validated request to start a run: what an idempotent repeat must match."""

    workflow: str
    spec: WorkflowSpec
    """The definition the run executes under."""
    trigger: str
    input: JSONDict
    run_id: UUID
    queue: str
    idempotency_key: str | None
    metadata: JSONDict
    context: JSONDict
    signal_type: str = "start_run"
    """The command the start is received as: ``start_run``, ``replay_run``, ``start_cron``..."""
    replayed_from_run_id: UUID | None = None
    runtime_spec: bool = False
    """Whether ``spec`` was authored at run time (``start_spec``) and is stored with the run."""
    command_payload: JSONDict = field(default_factory=dict)
    """The command's own arguments, added to the receipt's ``workflow`` and ``trigger``."""
    actor: str | None = None
    """Who sent the command, for the receipt (default ``None``)."""
    comment: str | None = None
    """Free text for the receipt (default ``None``)."""
    erasable: bool = False
    """The workflow is ``erasable``: the run's personal data is sealed under its own key."""
    new_id: bool = False
    """The run id was drawn for this request (no id, no key given): no run can have it, so
    the start skips looking for an existing run (two reads per start on SQLite/Postgres)."""
    partition: int = 0
    """The partition of ``queue`` the run's work goes to (`SquidMesh.partition_for`)."""

    @property
    def dispatch_queue(self) -> str:
        """The name of the queue partition the run's attempts are scheduled on."""
        return partition_queue(self.queue, self.partition)

    def matches(self, run: WorkflowRun) -> bool:
        """Whether ``run`` was started by this same request (a duplicate delivery)."""
        receipt = run.command_history[0] if run.command_history else {}
        return (
            run.workflow == self.workflow
            and run.spec == (self.spec.to_dict() if self.runtime_spec else None)
            and run.trigger == self.trigger
            and run.input == self.input
            and run.queue == self.queue
            and receipt.get("idempotency_key") == self.idempotency_key
            and receipt.get("signal_type") == self.signal_type
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
    signal_type: str = "start_run",
    replayed_from_run_id: UUID | None = None,
    command_payload: JSONDict | None = None,
    actor: str | None = None,
    comment: str | None = None,
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
        PayloadTooLarge: the payload or metadata is over ``mesh.limits``.
    """
    check_idempotency_key(idempotency_key)
    start_metadata = check_metadata(metadata)
    mesh.workflows.register(workflow)
    trigger_name = workflow.resolve_trigger(trigger).name
    run_input = workflow.validate_payload(payload, trigger_name, now=now)
    queue_name = check_queue_name(mesh.default_queue if queue is None else queue)
    mesh.limits.measure_request({"payload": run_input, "metadata": start_metadata})
    rid = _run_id(run_id, idempotency_key, f"start:{workflow.name}:{trigger_name}")
    partition = mesh.partition_for(queue_name, rid)
    index = {k: run_input[k] for k in workflow.index_keys if k in run_input}
    return StartRequest(
        workflow=workflow.name,
        spec=workflow.to_spec(),
        trigger=trigger_name,
        input=run_input,
        run_id=rid,
        queue=queue_name,
        idempotency_key=idempotency_key,
        metadata=start_metadata,
        context={**(context or {}), **({"index": index} if index else {})},
        erasable=workflow.erasable,
        new_id=run_id is None and idempotency_key is None,
        partition=partition,
        signal_type=signal_type,
        replayed_from_run_id=replayed_from_run_id,
        command_payload=dict(command_payload or {}),
        actor=actor,
        comment=comment,
    )


def build_spec_request(
    mesh: SquidMesh,
    spec: WorkflowSpec | Mapping[str, JSONValue],
    payload: Mapping[str, JSONValue],
    *,
    trigger: str | None,
    action_registry: ActionRegistry | None,
    run_id: UUID | str | None,
    queue: str | None,
    idempotency_key: str | None,
    metadata: Mapping[str, JSONValue] | None,
    now: datetime,
) -> StartRequest:
    """Check a start of a runtime-authored spec before anything is written.

    The spec is validated as a whole, and every action key it names (steps and
    compensations) must be allowed by the registry: the host's registry, never code named
    by the data. The resolved spec is stored with the run, so later deploys cannot change it.

    Raises:
        InvalidArgument: no action registry, or the queue or metadata is unusable.
        WorkflowValidationError: the spec breaks a rule, or the registry refuses an action.
        InvalidTrigger: the trigger is unknown, or missing while the spec has several.
        PayloadValidationError: the payload breaks the spec's payload contract.
        InvalidRunId: ``run_id`` is not a UUID.
        PayloadTooLarge: the payload, metadata or spec is over ``mesh.limits``.
    """
    check_idempotency_key(idempotency_key)
    start_metadata = check_metadata(metadata)
    registry = action_registry if action_registry is not None else mesh.action_registry
    if registry is None:
        raise InvalidArgument(
            "action_registry", "start_spec needs the host's action registry to resolve actions"
        )
    resolved = spec if isinstance(spec, WorkflowSpec) else WorkflowSpec.from_dict(spec)
    validate_spec(resolved, action_registry=registry, runtime_authored=True)
    trigger_name = resolved.trigger(trigger).name
    run_input = resolved.validate_payload(payload, trigger_name, now=now)
    queue_name = check_queue_name(mesh.default_queue if queue is None else queue)
    mesh.limits.measure_request(
        {"payload": run_input, "metadata": start_metadata, "spec": resolved.to_dict()}
    )
    rid = _run_id(run_id, idempotency_key, f"start_spec:{resolved.workflow}:{trigger_name}")
    partition = mesh.partition_for(queue_name, rid)
    return StartRequest(
        workflow=resolved.workflow,
        spec=resolved,
        trigger=trigger_name,
        input=run_input,
        run_id=rid,
        queue=queue_name,
        idempotency_key=idempotency_key,
        metadata=start_metadata,
        context={},
        new_id=run_id is None and idempotency_key is None,
        partition=partition,
        signal_type="start_spec",
        runtime_spec=True,
    )


def start_run(mesh: SquidMesh, request: StartRequest, *, now: datetime) -> PreparedStart:
    """Commit the run's start, its receipt, its entry runnables and their attempts at once.

    A run that already exists under the request's id is returned (with no queue) when the
    same request started it; otherwise the committed run comes with its saved queue. A
    twin start committing meanwhile makes this one decide again, so it gets the same run
    back (or `RunIdTaken`), never the queue's view of the twin's work. The start is traced
    (`start_span`), and the run keeps that span's context for its steps.

    Raises:
        RunIdTaken: the run id belongs to a different request.
    """
    with start_span(request.workflow, request.dispatch_queue, request.run_id):
        return _start_run(mesh, request, now=now)


def _start_run(mesh: SquidMesh, request: StartRequest, *, now: datetime) -> PreparedStart:
    for _ in range(CONFLICT_RETRIES):
        try:
            prepared = prepare_start(mesh, request, now=now)
        except RACE_SIGNS:
            if run_moved(mesh, request.run_id, None):
                continue
            raise
        if prepared.settled is None:
            return prepared
        try:
            mesh.save(*prepared.aggregates)
        except Conflict:
            conflict_retried("start")
            continue
        after_commit(mesh, prepared.settled)
        return prepared
    raise Conflict("journal kept moving while starting", run_id=str(request.run_id))


@dataclass
class PreparedStart:
    """A start decided but not saved: its aggregates, and the effects due after the commit."""

    run: WorkflowRun
    queue: DispatchQueue | None = None
    settled: Settled | None = None
    """``None`` when the run already existed (an idempotent repeat): nothing to save."""

    @property
    def aggregates(self) -> list[WorkflowRun | DispatchQueue]:
        """What to save, in one transaction, for the start to happen."""
        if self.settled is None or self.queue is None:
            return []
        return [self.run, self.queue]


def prepare_start(
    mesh: SquidMesh,
    request: StartRequest,
    *,
    now: datetime,
    queue: DispatchQueue | None = None,
) -> PreparedStart:
    """Decide a start: the new run with its receipt and entry work, scheduled on ``queue``.

    Pass the ``queue`` object when several decisions of one transaction share it.

    Raises:
        RunIdTaken: the run id belongs to a different request.
    """
    existing = None if request.new_id else find_run(mesh, request.run_id)
    if existing is not None:
        if request.matches(existing):
            return PreparedStart(existing)
        raise RunIdTaken(request.run_id, "a different start request started it")
    spec = request.spec
    if not request.runtime_spec:  # the graph the run follows, readable after any deploy
        mesh.definitions.prepare(spec)
    run = WorkflowRun.start(
        run_id=request.run_id,
        workflow=request.workflow,
        trigger=request.trigger,
        input=request.input,
        queue=request.queue,
        context=request.context,
        definition_fingerprint=spec.fingerprint,
        definition_version=spec.version,
        replayed_from_run_id=request.replayed_from_run_id,
        spec=spec.to_dict() if request.runtime_spec else None,
        partition=request.partition,
        erasable=request.erasable,
        trace_context=capture_context(),
        now=now,
    )
    run.receive_command(
        request.signal_type,
        payload={
            "workflow": request.workflow,
            "trigger": request.trigger,
            **request.command_payload,
        },
        metadata=request.metadata,
        idempotency_key=request.idempotency_key,
        actor=request.actor,
        comment=request.comment,
        now=now,
    )
    progress = plan_entry(spec, run, now=now)
    if queue is None:
        queue = mesh.get_queue(request.dispatch_queue, now=now)
    rid = str(run.run_id)
    queue.enqueue_run(rid, now=now)
    settled = Settled(runs={rid: run}, queue=queue)
    # A new run's first work waits behind runs under way; a child run's is part of its
    # parent's progress, so it does not wait behind the backlog either.
    fresh = "parent" not in request.context
    carry_out(mesh, queue, run, progress, now=now, settled=settled, fresh=fresh)
    return PreparedStart(run, queue, settled)


def _run_id(run_id: UUID | str | None, idempotency_key: str | None, scope: str) -> UUID:
    """The given id; else one derived from the key within ``scope``; else a fresh one."""
    if run_id is not None:
        return parse_run_id(run_id)
    if idempotency_key is not None:
        return uuid5(JOURNAL_NAMESPACE, f"{scope}:{idempotency_key}")
    return uuid4()


def check_idempotency_key(key: object) -> None:
    """Refuse a blank key: it would silently make unrelated starts one start.

    Raises:
        InvalidArgument: ``key`` is given but not a non-blank string.
    """
    if key is not None and (not isinstance(key, str) or not key.strip()):
        raise InvalidArgument("idempotency_key", "must be a non-blank string")


def check_metadata(metadata: Mapping[str, JSONValue] | None) -> JSONDict:
    """The receipt's metadata as a JSON object.

    Raises:
        InvalidArgument: a key is not a string, or a value would not survive JSON (a tuple,
            a set, bytes, NaN): the receipt could not be stored as given.
    """
    copied = dict(metadata or {})
    if not is_json_value(copied):
        raise InvalidArgument(
            "metadata", "must be a JSON object: string keys, values that survive JSON"
        )
    return copied


def find_run(mesh: SquidMesh, run_id: UUID) -> WorkflowRun | None:
    """The run with ``run_id``, or ``None`` when there is none yet."""
    try:
        return mesh.get_run(run_id)
    except RunNotFound:
        return None
