"""Every snapshot a command returns shows its receipts whole: payload, comment, metadata."""

from __future__ import annotations

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.read_model import CommandRecord, RunSnapshot
from squidmesh_es.runtime import Signal

from engine_workflows import CALLS, Approved, Paused, Sequential


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def last_receipt(snapshot: RunSnapshot) -> CommandRecord:
    return snapshot.command_history[-1]


def paused(mesh: SquidMesh, workflow: type) -> str:
    run_id = mesh.start(workflow, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")
    return run_id


def test_start_returns_its_receipt_with_payload_and_metadata(mesh: SquidMesh) -> None:
    receipt = last_receipt(mesh.start(Sequential, {"order_id": "o1"}, metadata={"by": "ana"}))

    assert receipt.signal_type == "start_run"
    assert receipt.payload == {"workflow": "Sequential", "trigger": "place"}
    assert receipt.metadata == {"by": "ana"}


def test_cancel_returns_its_receipt_with_reason_and_redacted_metadata(mesh: SquidMesh) -> None:
    run_id = mesh.start(Sequential, {"order_id": "o1"}).run_id

    snap = mesh.cancel(run_id, actor="ops", reason="duplicate", metadata={"token": "s3cr3t"})

    receipt = last_receipt(snap)
    assert (receipt.signal_type, receipt.actor, receipt.comment) == (
        "cancel_run",
        "ops",
        "duplicate",
    )
    assert receipt.payload is not None and receipt.metadata is not None
    assert "s3cr3t" not in str(receipt.metadata)


@pytest.mark.parametrize("decide", ["approve", "reject"])
def test_approve_and_reject_return_their_receipt(mesh: SquidMesh, decide: str) -> None:
    run_id = paused(mesh, Approved)

    snap = getattr(mesh, decide)(run_id, actor="ana", comment="why", metadata={"ticket": "T-1"})

    receipt = last_receipt(snap)
    assert (receipt.actor, receipt.comment, receipt.metadata) == ("ana", "why", {"ticket": "T-1"})
    assert receipt.payload == {"run_id": run_id, "step": "review"}


def test_resume_and_apply_signal_return_their_receipt(mesh: SquidMesh) -> None:
    first = paused(mesh, Paused)
    second = paused(mesh, Paused)

    resumed = mesh.resume(first, comment="go", metadata={"ticket": "T-3"})
    signalled = mesh.apply_signal(Signal.resume_run(second, comment="go too"))

    assert (last_receipt(resumed).comment, last_receipt(resumed).metadata) == (
        "go",
        {"ticket": "T-3"},
    )
    assert last_receipt(signalled).comment == "go too"
    assert last_receipt(signalled).payload == {"run_id": second, "step": "hold"}


def test_replay_returns_the_new_run_with_its_receipt(mesh: SquidMesh) -> None:
    source = mesh.start(Sequential, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")

    replayed = mesh.replay(source, comment="again", metadata={"ticket": "T-4"})

    receipt = replayed.command_history[0]
    assert (receipt.signal_type, receipt.comment, receipt.metadata) == (
        "replay_run",
        "again",
        {"ticket": "T-4"},
    )
    assert receipt.payload is not None
