"""recover() reads only what may need repair: an index, never every open run."""

from __future__ import annotations

import pytest
from test_recovery_and_hints import planned_but_unscheduled

from squidmesh_es import SquidMesh
from squidmesh_es.runtime import WorkflowRegistry, _recovery
from squidmesh_es.testing import ManualClock

from engine_workflows import Sequential


def test_a_pass_over_healthy_open_runs_reads_none_of_them(mesh: SquidMesh) -> None:
    for n in range(30):
        mesh.start(Sequential, {"order_id": f"o{n}"})
    mesh.execute_next(owner_id="w")

    report = mesh.recover()

    assert len(mesh.get_queue().queued_runs) == 30
    assert report.examined_runs == 0 and not report.repaired
    assert report.events_read > 0 and report.seconds > 0


def test_a_long_window_is_checked_off_and_the_next_pass_reads_only_what_followed(
    mesh: SquidMesh, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_recovery, "CHECKPOINT_EVERY", 10)
    for n in range(10):
        mesh.start(Sequential, {"order_id": f"o{n}"})

    first = mesh.recover()
    second = mesh.recover()
    gap = planned_but_unscheduled(mesh, clock)
    third = mesh.recover()

    assert first.events_read >= 10 and mesh.get_queue().recovered_to > 0
    assert second.events_read == 0 and second.examined_runs == 0
    assert third.events_read == 1 and third.scheduled == [f"{gap}:reserve:1"]


def test_a_run_skipped_for_want_of_its_code_is_examined_again_after_a_checkpoint(
    mesh: SquidMesh, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_recovery, "CHECKPOINT_EVERY", 1)
    gap = planned_but_unscheduled(mesh, clock)
    for n in range(5):
        mesh.start(Sequential, {"order_id": f"o{n}"})
    registered = mesh.workflows
    mesh.workflows = WorkflowRegistry()

    skipped = mesh.recover()
    mesh.workflows = registered
    repaired = mesh.recover()

    assert skipped.skipped_runs == [gap]
    assert repaired.scheduled == [f"{gap}:reserve:1"]
