"""start_spec on every backend: runtime-authored specs resolved through the action registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    Conflict,
    InvalidArgument,
    InvalidReplaySource,
    PayloadValidationError,
    WorkflowValidationError,
)
from squidmesh_es.runtime._execution import claim_attempts, run_claimed
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import ActionRegistry, Ok, Step, StepContext, Workflow, manual, step

from conftest import OpenMesh
from spec_actions import (
    RAN,
    LoadInvoice,
    SendReminder,
    charge_spec,
    disabled,
    registry,
    reminder_spec,
)


@pytest.fixture(autouse=True)
def _fresh_ran() -> None:
    RAN.clear()


def nothing_written(mesh: SquidMesh) -> bool:
    return not list(mesh.recorder.select_notifications(start=1, limit=10))


def test_a_runtime_spec_runs_through_its_action_keys(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-1"})
    assert started.workflow == "invoice_reminder"
    assert started.definition_version == "editor-7"
    assert started.command_history[0].signal_type == "start_spec"

    assert mesh.drain() == 2

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert RAN == ["billing.load_invoice", "billing.send_reminder"]
    assert snap.context["reminded"] == "inv-1"
    assert [r.action for r in snap.planned_runnables] == [
        "billing.load_invoice",
        "billing.send_reminder",
    ]


def test_the_resolved_spec_is_stored_with_the_run_and_drives_inspection(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-2"})

    run = mesh.get_run(started.run_id)
    assert run.spec is not None
    assert run.spec["steps"][0]["action"] == "billing.load_invoice"
    graph = mesh.inspect_run_graph(started.run_id).to_map()
    assert [node["id"] for node in graph["nodes"]] == ["load", "notify"]
    assert [(edge["from"], edge["to"]) for edge in graph["edges"]] == [
        ("load", "notify"),
        ("notify", "complete"),
    ]
    assert mesh.inspect_run(started.run_id).definition_matches is True


def test_a_class_deployed_later_under_the_same_name_does_not_change_a_spec_run(
    open_mesh: OpenMesh,
) -> None:
    class Other(Step):
        def run(self, input: dict[str, object], ctx: StepContext) -> Ok:
            RAN.append("other")
            return Ok()

    class NoPayload(BaseModel):
        pass

    class InvoiceReminder(Workflow):
        name = "invoice_reminder"
        payload = NoPayload
        triggers = [manual("remind")]
        only = step(Other)

    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-3"})
    mesh.register(InvoiceReminder)

    mesh.drain()

    assert RAN == ["billing.load_invoice", "billing.send_reminder"]
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"


def test_the_same_idempotency_key_returns_the_same_run_with_one_receipt(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(action_registry=registry())
    first = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-4"}, idempotency_key="k-1")
    again = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-4"}, idempotency_key="k-1")
    other = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-4"}, idempotency_key="k-2")

    assert again.run_id == first.run_id
    assert len(again.command_history) == 1
    assert other.run_id != first.run_id


def test_another_spec_under_a_used_run_id_conflicts(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    run_id = "5a1c4c8e-1f0e-4c1e-9a55-0d6f1c2e9a10"
    mesh.start_spec(reminder_spec(), {"invoice_id": "inv-5"}, run_id=run_id)

    with pytest.raises(Conflict):
        mesh.start_spec(reminder_spec(version="editor-8"), {"invoice_id": "inv-5"}, run_id=run_id)


def test_without_an_action_registry_nothing_starts(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument) as raised:
        mesh.start_spec(reminder_spec(), {"invoice_id": "inv-6"})

    assert raised.value.code == "invalid_option"
    assert nothing_written(mesh)


def without_reminder() -> ActionRegistry:
    actions = registry()
    return ActionRegistry({key: actions.resolve(key) for key in actions if "reminder" not in key})


@pytest.mark.parametrize(
    ("refusing", "code"),
    [
        (without_reminder(), "unknown_action_key"),
        (registry(**{"billing.send_reminder": disabled(SendReminder)}), "disabled_action_key"),
    ],
)
def test_a_refused_action_refuses_the_start(
    mesh: SquidMesh, refusing: ActionRegistry, code: str
) -> None:
    with pytest.raises(WorkflowValidationError) as raised:
        mesh.start_spec(reminder_spec(), {"invoice_id": "inv-7"}, action_registry=refusing)

    assert [issue.code for issue in raised.value.issues] == [code]
    assert nothing_written(mesh)


def test_a_class_reference_in_a_runtime_spec_refuses_the_start(mesh: SquidMesh) -> None:
    spec = reminder_spec()
    spec["steps"][0] = {**spec["steps"][0], "action": None, "ref": "billing.steps:Load"}

    with pytest.raises(WorkflowValidationError) as raised:
        mesh.start_spec(spec, {"invoice_id": "inv-9"}, action_registry=registry())

    assert [issue.code for issue in raised.value.issues] == ["missing_action_key"]
    assert nothing_written(mesh)


def test_an_invalid_spec_or_payload_writes_nothing(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    broken = reminder_spec(transitions=[{"from": "load", "on": "ok", "to": "nowhere"}])

    with pytest.raises(WorkflowValidationError):
        mesh.start_spec(broken, {"invoice_id": "inv-8"})
    with pytest.raises(PayloadValidationError):
        mesh.start_spec(reminder_spec(), {"invoice_id": 8})

    assert nothing_written(mesh)


def test_metadata_that_json_would_not_bring_back_writes_nothing(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())

    with pytest.raises(InvalidArgument) as raised:
        mesh.start_spec(reminder_spec(), {"invoice_id": "inv-8"}, metadata={"t": {"x"}})  # type: ignore[dict-item]

    assert raised.value.option == "metadata"
    assert nothing_written(mesh)


def test_a_spec_run_cannot_be_replayed(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-9"})
    mesh.drain()

    with pytest.raises(InvalidReplaySource) as raised:
        mesh.replay(started.run_id)

    assert raised.value.code == "invalid_replay_source"
    assert raised.value.details["reason"] == "runtime_spec"


def test_a_spec_compensation_runs_through_its_action_key(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(charge_spec(), {"invoice_id": "inv-10"})

    mesh.drain()

    snap = mesh.inspect_run(started.run_id)
    assert RAN == ["billing.load_invoice", "billing.charge_card", "billing.release_hold"]
    assert snap.terminal_status == "failed"
    assert snap.context["hold_released"] == "load"
    assert snap.error is not None
    assert snap.error["compensation"]["compensated"] == ["load"]


@pytest.mark.shared_journal
def test_only_workers_holding_the_actions_claim_spec_work(open_mesh: OpenMesh) -> None:
    starter = open_mesh()
    started = starter.start_spec(
        reminder_spec(), {"invoice_id": "inv-11"}, action_registry=registry()
    )

    assert starter.execute_next(owner_id="no-actions") is None

    worker = open_mesh(action_registry=registry())
    assert worker.drain() == 2
    assert worker.inspect_run(started.run_id).terminal_status == "completed"


def test_work_of_a_disabled_action_waits_unclaimed_until_it_is_enabled_again(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-12"})
    mesh.action_registry = registry(**{"billing.load_invoice": disabled(LoadInvoice)})

    assert mesh.drain() == 0
    waiting = mesh.inspect_run(started.run_id)
    assert waiting.status == "running" and [a.step for a in waiting.visible_attempts] == ["load"]
    assert RAN == []

    mesh.action_registry = registry()
    assert mesh.drain() == 2
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"


def test_an_action_removed_between_claim_and_run_fails_its_step_visibly(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    mesh = open_mesh(action_registry=registry())
    started = mesh.start_spec(reminder_spec(), {"invoice_id": "inv-13"})
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=timedelta(minutes=1), now=clock.now()
    )
    mesh.action_registry = registry(**{"billing.load_invoice": disabled(LoadInvoice)})

    mesh.settle([run_claimed(mesh, claim)], queue="default")

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["reason"]["reason"]["code"] == "action_not_allowed"
    assert RAN == []
