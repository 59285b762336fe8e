"""The definition fingerprint ignores order that means nothing, so reordering never fences runs."""

from __future__ import annotations

import pytest

from squidmesh_es.workflow import Workflow, WorkflowSpec, manual, step

from conftest import OpenMesh
from engine_workflows import Charge, Order, Reserve, Ship


class JoinDeclaredAB(Workflow):
    name = "reordered_join"
    payload = Order
    triggers = [manual("go")]

    reserve = step(Reserve)
    charge = step(Charge)
    ship = step(Ship, after=[reserve, charge], input=["order_id", "amount"])


class JoinDeclaredBA(Workflow):
    name = "reordered_join"
    payload = Order
    triggers = [manual("go")]

    charge = step(Charge)
    reserve = step(Reserve)
    ship = step(Ship, after=[charge, reserve], input=["amount", "order_id"])


def _spec(after: list[str]) -> WorkflowSpec:
    data = JoinDeclaredAB.to_spec().to_dict()
    data["steps"][2]["after"] = after
    return WorkflowSpec.from_dict(data)


def test_after_lists_in_another_order_give_the_same_fingerprint() -> None:
    assert _spec(["reserve", "charge"]).fingerprint == _spec(["charge", "reserve"]).fingerprint


def test_steps_and_input_declared_in_another_order_give_the_same_fingerprint() -> None:
    assert JoinDeclaredAB.to_spec().fingerprint == JoinDeclaredBA.to_spec().fingerprint


def test_fingerprint_stored_by_earlier_builds_still_matches() -> None:
    spec = JoinDeclaredAB.to_spec()

    assert spec.declared_order_fingerprint != spec.fingerprint
    assert spec.matches(spec.declared_order_fingerprint)
    assert not spec.matches("0" * 64)


@pytest.mark.shared_journal
def test_a_run_in_flight_continues_after_its_workflow_is_reordered(open_mesh: OpenMesh) -> None:
    first = open_mesh(workflows=[JoinDeclaredAB])
    started = first.start(JoinDeclaredAB, {"order_id": "o1"})
    first.execute_next(owner_id="w")

    reordered = open_mesh(workflows=[JoinDeclaredBA])
    assert reordered.drain(owner_id="w2") == 2

    snap = reordered.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert snap.definition_matches is True
