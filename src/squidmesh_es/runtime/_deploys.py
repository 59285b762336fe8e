"""Deploys and runs in flight: missing steps, the pre-deploy check, and explicit migration.

A run follows the graph it started with and runs today's code for its steps. When today's
code lacks one of them, no worker of this deploy claims the step's attempt: the run waits,
`missing_steps` tells why, and `check_deploy` lists such runs before the code goes live.
`migrate_run` moves a run onto today's graph when that cannot strand it or contradict
what it already did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import (
    AttemptStatus,
    DispatchQueue,
    JSONDict,
    WorkflowRun,
    is_side_work,
)
from squidmesh_es.errors import (
    Conflict,
    InvalidArgument,
    RunTerminal,
    UnsafeMigration,
)
from squidmesh_es.runtime._execution import CONFLICT_RETRIES
from squidmesh_es.runtime._journal_listing import run_starts
from squidmesh_es.workflow import Outcome, Workflow, WorkflowMode, WorkflowSpec

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "DeployProblem",
    "Migration",
    "check_deploy",
    "migrate_run",
    "migration_conflicts",
    "missing_steps",
    "runs_in_flight",
]

_WAITING = (AttemptStatus.AVAILABLE, AttemptStatus.RETRY_SCHEDULED)


def missing_steps(
    mesh: SquidMesh, run: WorkflowRun, queue: DispatchQueue | None = None
) -> list[JSONDict]:
    """The run's waiting attempts whose step this deploy lacks, with both fingerprints.

    Empty unless this process has registered the run's workflow: a process without it is
    not a deploy of that workflow (a CLI without ``--import``, a service of other code).
    """
    workflow = mesh.workflows.get(run.workflow)
    if workflow is None or run.is_terminal:
        return []
    current = workflow.to_spec()
    found: list[JSONDict] = []
    queue = queue if queue is not None else mesh.get_queue(run.dispatch_queue)
    for attempt in queue.attempts_of(run.run_id):
        if attempt.status in _WAITING and not mesh.can_execute(attempt):
            found.append(
                {
                    "step": attempt.step,
                    "runnable_key": attempt.runnable_key,
                    "workflow": run.workflow,
                    "run_definition_fingerprint": run.definition_fingerprint,
                    "run_definition_version": run.definition_version,
                    "deploy_definition_fingerprint": current.fingerprint,
                    "deploy_definition_version": current.version,
                }
            )
    return found


@dataclass(frozen=True)
class DeployProblem:
    """A run in flight that this code cannot serve to its end."""

    run_id: str
    workflow: str
    reason: str
    """``missing_steps``, or ``incompatible_workflow_definition`` when this code would fail
    the run (strict mode, or a run started before graphs were stored whose workflow
    changed)."""
    missing_steps: tuple[str, ...]
    """Custom steps of the run's own graph, not completed yet, that this code lacks, and any
    other work it waits on that this code cannot run (a compensation callback)."""
    waiting_steps: tuple[str, ...]
    """Those of them the run waits on now (their attempts are unclaimed)."""
    run_definition_fingerprint: str | None
    deploy_definition_fingerprint: str

    def to_dict(self) -> JSONDict:
        """The problem as JSON-safe data (for ``--json``)."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "reason": self.reason,
            "missing_steps": list(self.missing_steps),
            "waiting_steps": list(self.waiting_steps),
            "run_definition_fingerprint": self.run_definition_fingerprint,
            "deploy_definition_fingerprint": self.deploy_definition_fingerprint,
        }


def check_deploy(mesh: SquidMesh) -> list[DeployProblem]:
    """Runs in flight of the workflows registered here that this code cannot serve.

    Reads every run start in the journal and loads each run of a registered workflow that
    has not ended: meant for a deploy pipeline, not for a hot path.
    """
    problems: list[DeployProblem] = []
    for run in runs_in_flight(mesh):
        definition = mesh.definition(run)
        workflow = mesh.workflows.get(run.workflow)
        if definition is None or workflow is None:
            continue
        waiting = tuple(dict.fromkeys(str(m["step"]) for m in missing_steps(mesh, run)))
        missing = list(dict.fromkeys([*definition.missing_steps(run), *waiting]))
        mismatch = definition.mismatch(run)
        if not missing and mismatch is None:
            continue
        problems.append(
            DeployProblem(
                run_id=str(run.run_id),
                workflow=run.workflow,
                reason=mismatch.code if mismatch is not None else "missing_steps",
                missing_steps=tuple(missing),
                waiting_steps=waiting,
                run_definition_fingerprint=run.definition_fingerprint,
                deploy_definition_fingerprint=workflow.to_spec().fingerprint,
            )
        )
    return problems


def runs_in_flight(mesh: SquidMesh, workflow: str | None = None) -> Iterator[WorkflowRun]:
    """Runs not ended of ``workflow`` (default: of every workflow registered here)."""
    for started in run_starts(mesh):
        if workflow is None and started.workflow not in mesh.workflows:
            continue
        if workflow is not None and started.workflow != workflow:
            continue
        run = mesh.get_run(started.originator_id)
        if not run.is_terminal:
            yield run


@dataclass(frozen=True)
class Migration:
    """What `migrate_run` did, or with ``dry_run`` would do, to one run."""

    run_id: str
    workflow: str
    status: str
    """``migrated``, ``unchanged`` (already on that definition) or ``would_migrate``."""
    from_fingerprint: str | None
    to_fingerprint: str

    def to_dict(self) -> JSONDict:
        """The migration as JSON-safe data (for ``--json``)."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "from_fingerprint": self.from_fingerprint,
            "to_fingerprint": self.to_fingerprint,
        }


def migrate_run(
    mesh: SquidMesh,
    run_id: UUID | str,
    *,
    to: type[Workflow] | None,
    actor: str | None,
    reason: str | None,
    dry_run: bool,
    now: datetime,
) -> Migration:
    """Move the run onto ``to``'s definition (default: its registered class) when safe.

    Raises:
        RunNotFound, InvalidRunId: no such run.
        RunTerminal: the run has ended.
        InvalidArgument: the run carries a runtime-authored spec (``start_spec``), ``to``
            is another workflow, or none is registered here.
        UnsafeMigration: the move would strand the run or contradict its history; nothing
            was written.
    """
    for _ in range(CONFLICT_RETRIES):
        run = mesh.get_run(run_id)
        if run.is_terminal:
            raise RunTerminal(run.run_id, run.terminal_status)
        spec = _target(mesh, run, to).to_spec()
        if spec.matches(run.definition_fingerprint):
            return _result(run, "unchanged", spec)
        definition = mesh.definition(run)
        assert definition is not None  # the class is registered by _target
        conflicts = migration_conflicts(definition.spec, spec, run)
        if conflicts:
            raise UnsafeMigration(run.run_id, conflicts)
        if dry_run:
            return _result(run, "would_migrate", spec)
        before = run.definition_fingerprint
        mesh.definitions.prepare(spec)
        run.migrate(
            to_fingerprint=spec.fingerprint,
            to_version=spec.version,
            actor=actor,
            reason=reason,
            now=now,
        )
        try:
            mesh.save(run)
        except Conflict:
            continue
        return Migration(str(run.run_id), run.workflow, "migrated", before, spec.fingerprint)
    raise Conflict("run kept moving while migrating", run_id=str(run_id))


def _target(mesh: SquidMesh, run: WorkflowRun, to: type[Workflow] | None) -> type[Workflow]:
    if run.spec is not None:
        raise InvalidArgument("run_id", "the run carries its own spec (start_spec)")
    if to is not None:
        if not (isinstance(to, type) and issubclass(to, Workflow)) or to.name != run.workflow:
            raise InvalidArgument("to", f"must be a workflow class named {run.workflow!r}")
        mesh.workflows.register(to)
    target = mesh.workflows.get(run.workflow)
    if target is None:
        raise InvalidArgument("workflow", f"{run.workflow!r} is not registered")
    return target


def _result(run: WorkflowRun, status: str, spec: WorkflowSpec) -> Migration:
    fingerprint = run.definition_fingerprint
    return Migration(str(run.run_id), run.workflow, status, fingerprint, spec.fingerprint)


def migration_conflicts(
    source: WorkflowSpec, target: WorkflowSpec, run: WorkflowRun
) -> list[dict[str, str]]:
    """Why ``run`` cannot follow ``target`` instead of ``source``: one entry per step.

    A move is safe when every step the run applied or waits on exists in the target with
    the same kind, every route it took still leads where it led, and (dependency
    workflows) no step new to the run would wait forever on steps it already finished.
    """
    conflicts: list[dict[str, str]] = []
    target_steps = {step.name: step for step in target.steps}
    seen: set[str] = set()
    for planned in run.planned.values():
        name = str(planned["step"])
        if is_side_work(planned) or name in seen:
            continue
        seen.add(name)
        found = target_steps.get(name)
        if found is None:
            conflicts.append({"step": name, "reason": "missing_from_target"})
        elif found.kind is not source.step(name).kind:
            conflicts.append({"step": name, "reason": "kind_changed"})
    for applied in run.applied.values():
        taken = applied.get("transition")
        name = str(applied["step"])
        if not isinstance(taken, dict) or name not in target_steps:
            continue
        routes = target.transitions_from(name, Outcome(str(taken.get("on", "ok"))))
        if all(route.to != taken.get("to") for route in routes):
            conflicts.append({"step": name, "reason": "route_changed"})
    if target.mode is WorkflowMode.DEPENDENCY:
        done = {str(a["step"]) for a in run.applied.values()}
        for step in target.steps:
            if step.name in seen:
                continue
            after = set(step.after or ())
            if not after or after <= done:
                conflicts.append({"step": step.name, "reason": "never_planned"})
    return conflicts
