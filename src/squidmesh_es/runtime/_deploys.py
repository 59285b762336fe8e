"""Deploys and runs in flight: which steps a run needs that this code does not provide.

A run follows the graph it started with and runs today's code for its steps. When today's
code lacks one of them, no worker of this deploy claims the step's attempt: the run waits,
`missing_steps` tells why, and `check_deploy` lists such runs before the code goes live.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from squidmesh_es.domain import AttemptStatus, JSONDict, WorkflowRun
from squidmesh_es.runtime._journal_listing import run_starts

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["DeployProblem", "check_deploy", "missing_steps"]

_WAITING = (AttemptStatus.AVAILABLE, AttemptStatus.RETRY_SCHEDULED)


def missing_steps(mesh: SquidMesh, run: WorkflowRun) -> list[JSONDict]:
    """The run's waiting attempts whose step this deploy lacks, with both fingerprints.

    Empty unless this process has registered the run's workflow: a process without it is
    not a deploy of that workflow (a CLI without ``--import``, a service of other code).
    """
    workflow = mesh.workflows.get(run.workflow)
    if workflow is None or run.is_terminal:
        return []
    current = workflow.to_spec()
    found: list[JSONDict] = []
    for attempt in mesh.get_queue(run.queue).attempts_of(run.run_id):
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
    """Custom steps of the run's own graph, not completed yet, that this code lacks."""
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
    for run in _runs_in_flight(mesh):
        definition = mesh.definition(run)
        workflow = mesh.workflows.get(run.workflow)
        if definition is None or workflow is None:
            continue
        missing = definition.missing_steps(run)
        mismatch = definition.mismatch(run)
        if not missing and mismatch is None:
            continue
        waiting = tuple(str(m["step"]) for m in missing_steps(mesh, run))
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


def _runs_in_flight(mesh: SquidMesh) -> Iterator[WorkflowRun]:
    for started in run_starts(mesh):
        if started.workflow not in mesh.workflows:
            continue
        run = mesh.get_run(started.originator_id)
        if not run.is_terminal:
            yield run
