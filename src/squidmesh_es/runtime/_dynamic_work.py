"""Dynamic work on a live run: preview it, record it for inspection, or schedule it to run.

All three read the run and check the proposal the same way (`check_proposal`). Preview
writes nothing. Record appends one inspection fact. Schedule appends the fact and one
planned runnable per node to the run and schedules their attempts, all in one commit, so a
worker can never see half of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import DispatchQueue, WorkflowRun
from squidmesh_es.domain._dynamic import (
    DynamicCheck,
    DynamicProposal,
    check_proposal,
    dynamic_runnables,
)
from squidmesh_es.domain._planner import Progress
from squidmesh_es.errors import Conflict
from squidmesh_es.read_model import DynamicWorkPreview, build_run_graph
from squidmesh_es.runtime._definitions import RunDefinition
from squidmesh_es.runtime._execution import (
    CONFLICT_RETRIES,
    RACE_SIGNS,
    Settled,
    after_commit,
    carry_out,
    run_moved,
)
from squidmesh_es.workflow import ActionRegistry

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["preview_dynamic_work", "record_dynamic_work", "schedule_dynamic_work"]


def preview_dynamic_work(
    mesh: SquidMesh,
    run_id: UUID | str,
    proposal: Mapping[str, object],
    *,
    action_registry: ActionRegistry | None,
    now: datetime,
) -> DynamicWorkPreview:
    """Check ``proposal`` as `record_dynamic_work` would, and show its graph; writes nothing."""
    run = mesh.get_run(run_id)
    definition = _current_definition(mesh, run)
    parsed = DynamicProposal.parse(proposal)
    check = check_proposal(
        run, definition.spec, parsed, status="recorded", registry=action_registry
    )
    record = parsed.record("recorded")
    snapshot = mesh.inspect_run(run.run_id, now=now)
    if not check.duplicate:
        overlaid = [*snapshot.dynamic_work, {**record, "recorded_at": now.isoformat()}]
        snapshot = snapshot.model_copy(update={"dynamic_work": overlaid})
    graph = build_run_graph(snapshot, definition.spec)
    return DynamicWorkPreview(
        run_id=str(run.run_id),
        duplicate=check.duplicate,
        recordable=not check.duplicate,
        origin_node_id=str(parsed.origin["step"]),
        added_node_ids=check.added_node_ids,
        added_edge_ids=_edge_ids(check, parsed),
        warnings=check.warnings,
        dynamic_work=record,
        graph=graph.to_map(),
    )


def record_dynamic_work(
    mesh: SquidMesh,
    run_id: UUID | str,
    proposal: Mapping[str, object],
    *,
    action_registry: ActionRegistry | None,
    now: datetime,
) -> WorkflowRun:
    """Append the inspection fact; an identical proposal again changes nothing."""
    parsed = DynamicProposal.parse(proposal)
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        definition = _current_definition(mesh, run)
        check = check_proposal(
            run, definition.spec, parsed, status="recorded", registry=action_registry
        )
        if check.duplicate:
            return run
        _record(run, parsed, "recorded", now=now)
        try:
            mesh.save(run)
        except Conflict:
            continue
        return run
    raise Conflict("journal kept moving while recording dynamic work", run_id=str(run_id))


def schedule_dynamic_work(
    mesh: SquidMesh,
    run_id: UUID | str,
    proposal: Mapping[str, object],
    *,
    action_registry: ActionRegistry | None,
    now: datetime,
) -> tuple[WorkflowRun, DispatchQueue | None]:
    """Append the fact, plan one runnable per node and schedule its attempt, in one commit.

    Returns the run, and the queue when this call wrote it (``None`` for a duplicate).
    """
    parsed = DynamicProposal.parse(proposal)
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        seen = run.version
        definition = _current_definition(mesh, run)
        check = check_proposal(
            run, definition.spec, parsed, status="scheduled", registry=action_registry
        )
        if check.duplicate:
            return run, None
        _record(run, parsed, "scheduled", now=now)
        runnables = dynamic_runnables(run, parsed, now=now)
        run.plan(runnables, now=now)
        queue = mesh.get_queue(run.dispatch_queue, now=now)
        settled = Settled(runs={str(run.run_id): run}, queue=queue)
        try:
            carry_out(mesh, queue, run, Progress(to_schedule=runnables), now=now, settled=settled)
        except RACE_SIGNS:
            if run_moved(mesh, run.run_id, seen):
                continue  # a twin scheduled it between our reads: decide again
            raise
        try:
            mesh.save(run, queue)
        except Conflict:
            continue
        after_commit(mesh, settled)
        return run, queue
    raise Conflict("journal kept moving while scheduling dynamic work", run_id=str(run_id))


def _record(run: WorkflowRun, proposal: DynamicProposal, status: str, *, now: datetime) -> None:
    run.record_dynamic_work(
        dynamic_key=proposal.dynamic_key,
        origin=proposal.origin,
        nodes=proposal.nodes,
        edges=proposal.edges,
        metadata=proposal.metadata,
        reason=proposal.reason,
        status=status,
        now=now,
    )


def _current_definition(mesh: SquidMesh, run: WorkflowRun) -> RunDefinition:
    """The run's definition, refused when this process lacks it or holds another version."""
    definition = mesh.require_definition(run)
    mismatch = definition.mismatch(run)
    if mismatch is not None:
        raise mismatch
    return definition


def _edge_ids(check: DynamicCheck, proposal: DynamicProposal) -> list[str]:
    """Declared edge ids, plus the origin edge the graph draws to each added node."""
    origin = str(proposal.origin["step"])
    implied = [f"{origin}:dynamic:{node}" for node in check.added_node_ids]
    return [*check.added_edge_ids, *(e for e in implied if e not in check.added_edge_ids)]
