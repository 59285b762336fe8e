"""Deploying changed workflow code onto a journal with runs in flight, for the deploy tests."""

from __future__ import annotations

from uuid import UUID

from squidmesh_es import SquidMesh
from squidmesh_es.runtime import DefinitionChange, WorkflowRegistry
from squidmesh_es.workflow import Workflow

from conftest import OpenMesh


def deploy(
    open_mesh: OpenMesh, backend: str, *workflows: type[Workflow], strict: bool = False
) -> SquidMesh:
    """The runtime after a deploy of ``workflows``: a new one on the same journal."""
    on_change = DefinitionChange.FAIL if strict else DefinitionChange.FOLLOW
    if backend == "memory":
        mesh = open_mesh()
        mesh.workflows = WorkflowRegistry(workflows)
        mesh.on_definition_change = on_change
        return mesh
    return open_mesh(workflows=list(workflows), on_definition_change=on_change.value)


def steps_of(mesh: SquidMesh, run_id: UUID | str) -> list[str]:
    """The steps the run applied, in order, each once."""
    applied = [str(a["step"]) for a in mesh.get_run(run_id).applied.values()]
    return list(dict.fromkeys(applied))


def finish(mesh: SquidMesh, workflow: type[Workflow], **payload: object) -> UUID:
    """Start a run and take it through its approval, if any, to the end."""
    run_id = UUID(mesh.start(workflow, {"order_id": "new", **payload}).run_id)
    mesh.drain(owner_id="w")
    if mesh.inspect_run(run_id).status == "paused":
        mesh.approve(run_id, actor="ops")
        mesh.drain(owner_id="w")
    return run_id
