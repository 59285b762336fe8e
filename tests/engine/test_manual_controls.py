"""Manual boundaries and the command envelope: resume, approve, reject, cancel as signals."""

from __future__ import annotations

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument, ManualStepMismatch, RunTerminal
from squidmesh_es.runtime import Signal

from engine_workflows import CALLS, Approved, Paused, Sequential


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def paused_run(mesh: SquidMesh, workflow: type) -> str:
    run_id = mesh.start(workflow, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")
    return run_id


def test_an_approval_step_pauses_the_run_with_its_manual_state(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Approved)

    snap = mesh.inspect_run(run_id)
    assert snap.status == "paused"
    assert snap.manual_state is not None
    assert (snap.manual_state.step, snap.manual_state.kind) == ("review", "approval")
    assert mesh.execute_next(owner_id="w") is None


def test_approve_takes_the_ok_route_with_the_decision_in_context(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Approved)

    snap = mesh.approve(run_id, actor="ana", comment="fine", metadata={"ticket": "T-1"})
    mesh.drain(owner_id="w")

    final = mesh.inspect_run(run_id, include_history=True)
    assert snap.status == "running"
    assert final.terminal_status == "completed"
    review = final.context["review"]
    assert review["decision"] == "approved"
    assert (review["actor"], review["comment"], review["metadata"]) == (
        "ana",
        "fine",
        {"ticket": "T-1"},
    )
    assert final.context["decision_seen"] == "approved"
    approve = final.command_history[-1]
    assert (approve.signal_type, approve.actor, approve.comment) == ("approve_run", "ana", "fine")


def test_reject_takes_the_error_route(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Approved)

    snap = mesh.reject(run_id, actor="ana", comment="no")

    assert [a.step for a in snap.visible_attempts] == ["notify_rejection"]  # a log step
    assert mesh.drain(owner_id="w") == 1
    assert mesh.inspect_run(run_id).terminal_status == "completed"
    assert "Refund" not in [name for name, _ in CALLS]
    run = mesh.get_run(run_id)
    [review] = [a for a in run.applied.values() if a["step"] == "review"]
    assert review["outcome"] == "error" and review["error"]["decision"] == "rejected"


def test_reject_puts_the_decision_in_the_context_as_approve_does(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Approved)

    mesh.reject(run_id, actor="ana", comment="too much", metadata={"ticket": "T-2"})
    mesh.drain(owner_id="w")

    final = mesh.inspect_run(run_id)
    assert final.terminal_status == "completed"
    review = final.context["review"]
    assert (review["decision"], review["actor"], review["comment"], review["metadata"]) == (
        "rejected",
        "ana",
        "too much",
        {"ticket": "T-2"},
    )
    assert review["decided_at"] == final.command_history[-1].occurred_at.isoformat()


def test_resume_continues_a_pause(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Paused)

    mesh.resume(run_id, actor="ops")
    mesh.drain(owner_id="w")

    assert mesh.inspect_run(run_id).terminal_status == "completed"
    assert [name for name, _ in CALLS] == ["Reserve", "Charge"]


def test_wrong_kind_no_boundary_and_ended_runs_are_refused_without_writing(
    mesh: SquidMesh,
) -> None:
    paused = paused_run(mesh, Paused)
    version = mesh.get_run(paused).version
    with pytest.raises(ManualStepMismatch):
        mesh.approve(paused)
    assert mesh.get_run(paused).version == version

    running = mesh.start(Sequential, {"order_id": "o2"}).run_id
    with pytest.raises(ManualStepMismatch):
        mesh.resume(running)

    mesh.cancel(paused)
    with pytest.raises(RunTerminal):
        mesh.resume(paused)


def test_the_same_idempotency_key_is_one_command_and_another_key_a_second(
    mesh: SquidMesh,
) -> None:
    run_id = paused_run(mesh, Paused)

    first = mesh.resume(run_id, idempotency_key="k1")
    again = mesh.resume(run_id, idempotency_key="k1")

    assert again.run_id == first.run_id
    signals = [c["signal_type"] for c in mesh.get_run(run_id).command_history]
    assert signals == ["start_run", "resume_run"]
    with pytest.raises(ManualStepMismatch):
        mesh.resume(run_id, idempotency_key="k2")  # a distinct command: nothing to resume


def test_sensitive_metadata_is_redacted_in_receipts(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Paused)

    mesh.resume(run_id, metadata={"api_key": "sk-live", "authorization": "Bearer x", "note": "ok"})

    receipt = mesh.get_run(run_id).command_history[-1]
    assert receipt["metadata"]["note"] == "ok"
    assert "sk-live" not in str(receipt) and "Bearer x" not in str(receipt)


def test_sensitive_metadata_of_a_decision_never_reaches_storage(mesh: SquidMesh) -> None:
    approved = paused_run(mesh, Approved)
    rejected = mesh.start(Approved, {"order_id": "o2"}).run_id
    mesh.drain(owner_id="w")

    mesh.approve(approved, metadata={"api_key": "sk-live", "note": "ok"})
    mesh.reject(rejected, metadata={"password": "hunter2"})
    mesh.drain(owner_id="w")

    assert mesh.inspect_run(approved).context["review"]["metadata"] == {
        "api_key": "[REDACTED]",
        "note": "ok",
    }
    stored = mesh.recorder.select_notifications(start=None, limit=1000)
    assert stored and not any(b"sk-live" in n.state or b"hunter2" in n.state for n in stored)


def test_signals_are_the_one_path_and_refuse_unknown_attributes(mesh: SquidMesh) -> None:
    started = mesh.apply_signal(Signal.start_run(Approved, {"order_id": "o9"}, idempotency_key="s"))
    mesh.drain(owner_id="w")

    approved = mesh.apply_signal(Signal.approve_run(started.run_id, actor="bo"))
    mesh.drain(owner_id="w")

    assert approved.status == "running"
    assert mesh.inspect_run(started.run_id).terminal_status == "completed"
    with pytest.raises(InvalidArgument):
        Signal.cancel_run(started.run_id, reason="typo")


def test_a_cancel_signal_keeps_its_metadata_on_the_receipt(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Paused)

    mesh.apply_signal(Signal.cancel_run(run_id, actor="ops", metadata={"ticket": "T-4"}))

    receipt = mesh.get_run(run_id).command_history[-1]
    assert (receipt["signal_type"], receipt["metadata"]) == ("cancel_run", {"ticket": "T-4"})


def test_cancel_keeps_its_metadata_redacted_on_the_receipt(mesh: SquidMesh) -> None:
    run_id = paused_run(mesh, Paused)

    mesh.cancel(run_id, actor="ops", reason="dup", metadata={"ticket": "T-5", "token": "s3"})

    receipt = mesh.inspect_run(run_id, include_history=True).command_history[-1]
    assert receipt.metadata == {"ticket": "T-5", "token": "[REDACTED]"}
    assert (receipt.actor, receipt.comment) == ("ops", "dup")
