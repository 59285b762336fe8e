"""Explicit migration: a run in flight moves onto today's graph when that is safe, else nothing
is written and the conflicting steps are named."""

from __future__ import annotations

import pytest
from deploy_helpers import deploy, steps_of
from deploy_workflows import (
    ApprovedV1,
    ApprovedV2,
    JoinV1,
    JoinV2,
    RemovedV1,
    RemovedV2,
    Reserve,
    RetryingV1,
)

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument, RunTerminal, UnsafeMigration
from squidmesh_es.workflow import ActionRegistry, Workflow

from conftest import OpenMesh


def paused_run(mesh: SquidMesh) -> str:
    run_id = mesh.start(ApprovedV1, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w1")
    return run_id


def test_a_safe_migration_is_recorded_with_actor_and_reason_and_the_run_takes_the_new_graph(
    open_mesh: OpenMesh, backend: str
) -> None:
    run_id = paused_run(open_mesh(workflows=[ApprovedV1]))
    after = deploy(open_mesh, backend, ApprovedV2)

    migration = after.migrate_run(run_id, to=ApprovedV2, actor="ops", reason="adds notify")

    assert migration.status == "migrated"
    assert migration.from_fingerprint == ApprovedV1.to_spec().fingerprint
    assert migration.to_fingerprint == ApprovedV2.to_spec().fingerprint
    restarted = deploy(open_mesh, backend, ApprovedV2)
    run = restarted.get_run(run_id)
    assert run.definition_fingerprint == ApprovedV2.to_spec().fingerprint
    (moved,) = [e for e in restarted.events.get(run.id) if type(e).__name__ == "RunMigrated"]
    assert (moved.actor, moved.reason) == ("ops", "adds notify")  # type: ignore[attr-defined]
    restarted.approve(run_id, actor="ops")
    restarted.drain(owner_id="w2")
    assert restarted.get_run(run_id).terminal_status == "completed"
    assert steps_of(restarted, run_id) == ["reserve", "review", "charge", "notify"]


def test_a_dry_run_says_the_move_is_safe_and_writes_nothing(
    open_mesh: OpenMesh, backend: str
) -> None:
    run_id = paused_run(open_mesh(workflows=[ApprovedV1]))
    after = deploy(open_mesh, backend, ApprovedV2)
    version = after.get_run(run_id).version

    assert after.migrate_run(run_id, dry_run=True).status == "would_migrate"

    assert after.get_run(run_id).version == version


def test_a_run_already_on_the_definition_is_unchanged(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh)
    version = mesh.get_run(run_id).version

    assert mesh.migrate_run(run_id, to=ApprovedV1).status == "unchanged"
    assert mesh.get_run(run_id).version == version


@pytest.mark.parametrize(
    ("v1", "v2", "steps_to_run", "conflicts"),
    [
        (
            RemovedV1,
            RemovedV2,
            1,
            [
                {"step": "charge", "reason": "missing_from_target"},
                {"step": "reserve", "reason": "route_changed"},
            ],
        ),
        (JoinV1, JoinV2, 2, [{"step": "audit", "reason": "never_planned"}]),
    ],
    ids=["waits on a removed step", "a new join dependency would never be planned"],
)
def test_an_unsafe_migration_is_refused_naming_the_steps_and_writes_nothing(
    open_mesh: OpenMesh,
    backend: str,
    v1: type[Workflow],
    v2: type[Workflow],
    steps_to_run: int,
    conflicts: list[dict[str, str]],
) -> None:
    before = open_mesh(workflows=[v1])
    run_id = before.start(v1, {"order_id": "o1"}).run_id
    for _ in range(steps_to_run):
        before.execute_next(owner_id="w1")
    after = deploy(open_mesh, backend, v2)
    version = after.get_run(run_id).version

    with pytest.raises(UnsafeMigration) as refused:
        after.migrate_run(run_id, to=v2, actor="ops")

    assert refused.value.code == "unsafe_migration"
    assert refused.value.conflicts == conflicts
    assert after.get_run(run_id).version == version


def test_migration_is_refused_for_an_ended_run_and_onto_another_workflow(
    mesh: SquidMesh,
) -> None:
    mesh.register(RetryingV1)
    run_id = paused_run(mesh)

    with pytest.raises(InvalidArgument):
        mesh.migrate_run(run_id, to=RetryingV1)
    mesh.cancel(run_id)
    with pytest.raises(RunTerminal):
        mesh.migrate_run(run_id, to=ApprovedV2)


def test_a_run_of_a_runtime_spec_has_nothing_to_migrate(mesh: SquidMesh) -> None:
    registry = ActionRegistry({"orders.reserve": Reserve})
    spec = {
        "workflow": "spec_order",
        "triggers": [{"name": "place", "type": "manual"}],
        "steps": [{"name": "reserve", "kind": "custom", "action": "orders.reserve"}],
        "transitions": [{"from": "reserve", "on": "ok", "to": "complete"}],
    }
    run_id = mesh.start_spec(spec, {}, action_registry=registry).run_id

    with pytest.raises(InvalidArgument) as refused:
        mesh.migrate_run(run_id)

    assert refused.value.option == "run_id"
