"""Controls inside ``mesh.transaction()``: a host's decision and the run's resolution commit
together, or neither does."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    Conflict,
    InvalidSignal,
    ManualStepMismatch,
    RunIdTaken,
    RunNotFound,
)
from squidmesh_es.workflow import COMPLETE, Workflow, manual, step, transition

from engine_workflows import Approved, Charge, Order, Paused


class ChargeOnly(Workflow):
    """Its first step reads only the amount: two orders of one amount plan the same work."""

    payload = Order
    triggers = [manual("go")]

    charge = step(Charge, input=["amount"])

    transitions = [transition(charge, to=COMPLETE)]


class RefundCase(Aggregate):
    """The host's own record of a refund decision, kept in the same event store."""

    def __init__(self, run_id: str, decision: str) -> None:
        self.run_id = run_id
        self.decision = decision


def paused(mesh: SquidMesh, workflow: type) -> str:
    run_id = mesh.start(workflow, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")
    return run_id


def host_record(mesh: SquidMesh, case_id: UUID) -> RefundCase | None:
    try:
        found = mesh.repository.get(case_id)
    except AggregateNotFoundError:
        return None
    assert isinstance(found, RefundCase)
    return found


def test_an_approval_commits_with_the_hosts_own_aggregate(mesh: SquidMesh) -> None:
    run_id = paused(mesh, Approved)
    case = RefundCase(run_id, "approved")

    with mesh.transaction() as tx:
        tx.add(case)
        tx.approve(run_id, actor="ana", comment="ok", idempotency_key="case-1")
        assert mesh.inspect_run(run_id).status == "paused"  # nothing is written before exit

    snap = mesh.inspect_run(run_id)
    assert snap.status == "running"
    assert snap.context["review"]["decision"] == "approved"
    assert [a.step for a in snap.visible_attempts] == ["refund"]  # scheduled in the commit
    assert snap.command_history[-1].actor == "ana"
    stored = host_record(mesh, case.id)
    assert stored is not None and stored.decision == "approved"


def test_a_refused_control_raises_inside_the_block_and_nothing_is_written(
    mesh: SquidMesh,
) -> None:
    run_id = paused(mesh, Paused)
    case = RefundCase(run_id, "approved")
    before = mesh.recorder.max_notification_id()

    with pytest.raises(ManualStepMismatch), mesh.transaction() as tx:
        tx.add(case)
        tx.approve(run_id)  # a pause is resumed, not approved

    assert mesh.recorder.max_notification_id() == before
    assert host_record(mesh, case.id) is None


def test_a_run_that_moved_on_leaves_neither_the_host_change_nor_the_resolution(
    mesh: SquidMesh,
) -> None:
    run_id = paused(mesh, Paused)
    case = RefundCase(run_id, "resumed")

    with pytest.raises(Conflict), mesh.transaction() as tx:
        tx.add(case)
        tx.resume(run_id, actor="ops")
        mesh.cancel(run_id, actor="someone else")  # lands between decision and commit

    assert host_record(mesh, case.id) is None
    snap = mesh.inspect_run(run_id)
    assert snap.terminal_status == "cancelled"
    assert [c.signal_type for c in snap.command_history] == ["start_run", "cancel_run"]


def test_cancel_and_a_start_share_one_commit_and_one_queue(mesh: SquidMesh) -> None:
    stale = paused(mesh, Paused)
    replacement = uuid4()

    with mesh.transaction() as tx:
        tx.cancel(stale, actor="ops", reason="superseded", metadata={"ticket": "T-9"})
        tx.start(Paused, {"order_id": "o2"}, run_id=replacement)

    assert mesh.inspect_run(stale).terminal_status == "cancelled"
    fresh = mesh.inspect_run(replacement)
    assert [a.step for a in fresh.visible_attempts] == ["reserve"]


def test_a_duplicate_control_in_a_transaction_writes_nothing_for_the_run(mesh: SquidMesh) -> None:
    run_id = paused(mesh, Paused)
    mesh.resume(run_id, actor="ops", idempotency_key="resume-1")
    version = mesh.get_run(run_id).version

    with mesh.transaction() as tx:
        tx.resume(run_id, actor="ops", idempotency_key="resume-1")

    assert mesh.get_run(run_id).version == version


def test_a_control_on_an_unknown_run_raises_at_once(mesh: SquidMesh) -> None:
    with pytest.raises(RunNotFound), mesh.transaction() as tx:
        tx.cancel(uuid4())


def test_a_transaction_checks_a_control_as_its_signal_would(mesh: SquidMesh) -> None:
    run_id = paused(mesh, Paused)
    before = mesh.recorder.max_notification_id()

    with pytest.raises(InvalidSignal), mesh.transaction() as tx:
        tx.resume(run_id, idempotency_key="   ")
    with pytest.raises(InvalidSignal), mesh.transaction() as tx:
        tx.cancel(run_id, metadata={"at": object()})

    assert mesh.recorder.max_notification_id() == before


def test_a_start_repeated_in_one_transaction_is_one_run(mesh: SquidMesh) -> None:
    with mesh.transaction() as tx:
        first = tx.start(ChargeOnly, {"order_id": "o1", "amount": 5}, idempotency_key="k")
        again = tx.start(ChargeOnly, {"order_id": "o1", "amount": 5}, idempotency_key="k")

    assert again == first
    snap = mesh.inspect_run(first)
    assert [c.signal_type for c in snap.command_history] == ["start_run"]
    assert len(snap.visible_attempts) == 1


def test_another_start_under_a_key_used_in_the_same_transaction_is_refused(
    mesh: SquidMesh,
) -> None:
    with mesh.transaction() as tx:
        first = tx.start(ChargeOnly, {"order_id": "o1", "amount": 5}, idempotency_key="k")
        with pytest.raises(RunIdTaken):
            tx.start(ChargeOnly, {"order_id": "o2", "amount": 5}, idempotency_key="k")

    # The first request keeps its run; the second did not silently replace it.
    assert mesh.get_run(first).input["order_id"] == "o1"
