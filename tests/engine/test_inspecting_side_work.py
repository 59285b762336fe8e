"""Read models of rollbacks, dynamic work and runtime specs, through SquidMesh on every backend.

The graph and the explanation must tell what the engine did: callbacks as ``compensate:<step>``
nodes tied to the steps they undo, scheduled dynamic nodes once with their runnable's status,
and the recovery-policy evidence behind a rollback.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.read_model import EdgeStatus, NodeStatus, RunGraph, redact
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh
from engine_workflows import Deferring
from saga_workflows import (
    UNDONE,
    SagaCheckout,
    SagaFanOut,
    SagaWithFailingVoid,
    SagaWithUncompensatableStep,
)
from spec_actions import RAN, DigestFanout, charge_spec, deliver, digest_registry, fanout, registry


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    UNDONE.clear()
    RAN.clear()


def statuses(graph: RunGraph) -> dict[str, NodeStatus]:
    return {node.id: node.status for node in graph.nodes}


# -- compensation ----------------------------------------------------------------------------


def test_a_rollback_in_progress_is_drawn_and_explained(mesh: SquidMesh) -> None:
    run_id = mesh.start(SagaCheckout, {"order_id": "o1"}).run_id
    for _ in range(4):  # reserve, authorize, capture twice
        mesh.execute_next(owner_id="w")

    graph = mesh.inspect_run_graph(run_id)
    explanation = mesh.explain_run(run_id)

    callback = next(n for n in graph.nodes if n.id == "compensate:authorize_payment")
    assert callback.status is NodeStatus.PENDING and callback.compensates == "authorize_payment"
    assert graph.current_node_ids == ["compensate:authorize_payment"]
    edges = {e.id: e for e in graph.edges}
    compensation = edges["authorize_payment:compensation:compensate:authorize_payment"]
    assert compensation.type == "compensation" and compensation.status is EdgeStatus.SELECTED
    assert explanation.summary.startswith(
        "The run is compensating after capture_payment failed (compensated: none; failed "
        "callbacks: none; still to undo: authorize_payment, reserve_inventory)."
    )
    assert explanation.evidence["recovery_policy"] == {
        "compensatable": ["reserve_inventory", "authorize_payment"],
        "not_compensatable": [],
        "irreversible": [],
        "will_not_be_undone": [],
    }
    snapshot = mesh.inspect_run(run_id)
    assert snapshot.compensation is not None
    assert snapshot.compensation.pending == ["authorize_payment", "reserve_inventory"]


def test_a_rolled_back_run_shows_each_callback_with_its_outcome(mesh: SquidMesh) -> None:
    run_id = mesh.start(SagaWithFailingVoid, {"order_id": "o2"}).run_id
    mesh.drain()

    graph = mesh.inspect_run_graph(run_id)
    explanation = mesh.explain_run(run_id)

    assert statuses(graph) == {
        "reserve_inventory": NodeStatus.COMPLETED,
        "authorize_payment": NodeStatus.COMPLETED,
        "capture_payment": NodeStatus.FAILED,
        "compensate:authorize_payment": NodeStatus.FAILED,
        "compensate:reserve_inventory": NodeStatus.COMPLETED,
    }
    assert [e.id for e in graph.edges if e.type == "compensation"] == [
        "authorize_payment:compensation:compensate:authorize_payment",
        "reserve_inventory:compensation:compensate:reserve_inventory",
    ]
    assert explanation.summary == (
        "The run is terminal according to the run journal. A rollback ran after "
        "capture_payment failed (compensated: reserve_inventory; failed callbacks: "
        "authorize_payment)."
    )
    policy = explanation.evidence["recovery_policy"]
    assert isinstance(policy, dict) and policy["will_not_be_undone"] == ["authorize_payment"]
    compensation = explanation.details["compensation"]
    assert isinstance(compensation, dict) and compensation["failed"] == ["authorize_payment"]


def test_a_step_that_cannot_be_undone_is_named_in_the_evidence(mesh: SquidMesh) -> None:
    run_id = mesh.start(SagaWithUncompensatableStep, {"order_id": "o3"}).run_id
    mesh.drain()

    policy = mesh.explain_run(run_id).evidence["recovery_policy"]

    assert policy == {
        "compensatable": ["reserve_inventory"],
        "not_compensatable": ["send_receipt"],
        "irreversible": [],
        "will_not_be_undone": ["send_receipt"],
    }


def test_a_rollback_waiting_for_a_branch_in_flight_says_so(mesh: SquidMesh) -> None:
    run_id = mesh.start(SagaFanOut, {"order_id": "o4"}).run_id
    mesh.drain()

    explanation = mesh.explain_run(run_id)

    assert explanation.summary.startswith(
        "The run is compensating after capture_payment failed (compensated: "
        "authorize_payment; failed callbacks: none; still to undo: none; waiting for: "
        "reserve_inventory)."
    )


# -- dynamic work ----------------------------------------------------------------------------


@pytest.fixture
def digest(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(action_registry=digest_registry())


def test_a_scheduled_dynamic_node_is_drawn_once_with_its_runnable_status(
    digest: SquidMesh,
) -> None:
    run_id = digest.start(DigestFanout, {}).run_id
    digest.execute_next(owner_id="w")
    digest.schedule_dynamic_work(
        run_id, fanout(run_id, deliver("chat_1")), action_registry=digest_registry()
    )

    before = digest.inspect_run_graph(run_id)
    (attempt,) = digest.inspect_run(run_id).visible_attempts
    digest.drain()
    after = digest.inspect_run_graph(run_id)

    nodes = [n for n in before.nodes if n.id == "deliver_digest:chat_1"]
    assert len(nodes) == 1
    (node,) = nodes
    assert node.dynamic and node.status is NodeStatus.PENDING and node.current
    assert node.origin is not None and node.origin["step"] == "schedule_digest"
    assert attempt.dynamic is not None and attempt.dynamic["dynamic_key"] == "digest_fanout"
    assert statuses(after)["deliver_digest:chat_1"] is NodeStatus.COMPLETED
    (overlay,) = after.dynamic_work_overlays
    assert overlay["status"] == "scheduled"
    assert overlay["added_edge_ids"] == ["schedule_digest:dynamic:deliver_digest:chat_1"]
    edges = {e.id: e.status for e in after.edges}
    assert edges["schedule_digest:dynamic:deliver_digest:chat_1"] is EdgeStatus.SELECTED


def test_a_run_open_only_for_its_dynamic_nodes_says_which(
    digest: SquidMesh, clock: ManualClock
) -> None:
    run_id = digest.start(DigestFanout, {}).run_id
    digest.execute_next(owner_id="w")
    node = deliver("chat_1", action="digest.slow")
    digest.schedule_dynamic_work(run_id, fanout(run_id, node), action_registry=digest_registry())
    digest.drain()
    clock.advance(timedelta(minutes=1))
    digest.drain()  # the forward path reaches its end; the slow node is deferred

    explanation = digest.explain_run(run_id)

    assert explanation.status != "completed"
    assert explanation.summary.startswith(
        "The declared steps are done; the run stays open until its dynamic nodes settle "
        "(deliver_digest:chat_1)."
    )
    assert explanation.details["pending_dynamic_nodes"] == ["deliver_digest:chat_1"]
    assert statuses(digest.inspect_run_graph(run_id))["deliver_digest:chat_1"] is (
        NodeStatus.DEFERRED
    )


def test_a_redacted_preview_keeps_the_shape_and_hides_node_inputs(digest: SquidMesh) -> None:
    run_id = digest.start(DigestFanout, {}).run_id
    digest.execute_next(owner_id="w")
    proposal = fanout(run_id, {**deliver("chat_1"), "metadata": {"ticket": "T-9"}})

    preview = digest.preview_dynamic_work(run_id, proposal)
    shown = redact(preview, "external")

    assert shown.added_node_ids == preview.added_node_ids == ["deliver_digest:chat_1"]
    overlays = preview.graph["dynamic_work_overlays"]
    assert isinstance(overlays, list) and isinstance(overlays[-1], dict)
    assert overlays[-1]["added_edge_ids"] == preview.added_edge_ids
    assert shown.graph["edges"] == preview.graph["edges"]
    assert "T-9" in preview.model_dump_json() and "T-9" not in shown.model_dump_json()
    assert '"chat_1"' not in shown.model_dump_json()


# -- runtime specs -----------------------------------------------------------------------------


def test_a_runtime_spec_run_is_explained_from_its_stored_definition(open_mesh: OpenMesh) -> None:
    mesh = open_mesh(action_registry=registry())
    run_id = mesh.start_spec(charge_spec(), {"invoice_id": "inv-1"}).run_id
    mesh.drain()

    explanation = mesh.explain_run(run_id)
    graph = mesh.inspect_run_graph(run_id)

    assert explanation.evidence["definition_source"] == "runtime_spec"
    assert explanation.evidence["definition_matches"] is True
    assert mesh.inspect_run(run_id).definition_source == "runtime_spec"
    assert statuses(graph)["compensate:load"] is NodeStatus.COMPLETED
    assert "load:compensation:compensate:load" in {e.id for e in graph.edges}


def test_a_step_deferred_when_the_run_was_cancelled_reads_deferred_not_failed(
    mesh: SquidMesh,
) -> None:
    run_id = mesh.start(Deferring).run_id
    mesh.drain(owner_id="w")  # the step defers for a minute
    mesh.cancel(run_id, actor="ops")

    nodes = {n["id"]: n for n in mesh.inspect_run_graph(run_id).to_map()["nodes"]}

    assert nodes["settle"]["status"] == "deferred"
