from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from squidmesh_es.domain import ManualAction, ManualKind, RunStatus, TerminalStatus
from squidmesh_es.errors import (
    ActiveManualStep,
    ConflictingChildRun,
    ConflictingIntent,
    ManualStepMismatch,
    RunTerminal,
    UnknownAttempt,
)
from squidmesh_es.redaction import REDACTED

from domain_builders import T0, new_run, runnable


def test_new_run_holds_its_start_facts() -> None:
    run = new_run()

    assert run.status == RunStatus.STARTED
    assert run.workflow == "PaymentRecovery" and run.trigger == "manual"
    assert run.input == {"invoice_id": "inv-1"}
    assert run.definition_version == "v1" and run.definition_fingerprint == "f" * 64
    assert run.version == 1


def test_planning_makes_the_run_running_until_every_runnable_is_applied() -> None:
    run = new_run()
    first = runnable(run, "check")

    run.plan([first], now=T0)
    assert run.status == RunStatus.RUNNING

    run.apply_result(first.runnable_key, outcome="ok", result={"gateway": "up"}, now=T0)
    assert run.status == RunStatus.IDLE
    assert run.context == {"gateway": "up"}


def test_planning_the_same_runnable_again_writes_nothing() -> None:
    run = new_run()
    first = runnable(run, "check")
    run.plan([first], now=T0)
    run.collect_events()

    assert run.plan([first], now=T0) == []
    assert run.pending_events == []


def test_planning_a_key_with_other_contents_is_refused() -> None:
    run = new_run()
    run.plan([runnable(run, "check")], now=T0)

    with pytest.raises(ConflictingIntent):
        run.plan([runnable(run, "check", at=T0 + timedelta(seconds=1))], now=T0)


def test_applying_twice_is_idempotent_and_unknown_keys_are_refused() -> None:
    run = new_run()
    first = runnable(run, "check")
    run.plan([first], now=T0)
    run.apply_result(first.runnable_key, outcome="ok", result={"a": 1}, now=T0)
    run.collect_events()

    assert run.apply_result(first.runnable_key, outcome="ok", result={"a": 1}, now=T0) is False
    assert run.pending_events == []
    with pytest.raises(UnknownAttempt):
        run.apply_result("missing", outcome="ok", now=T0)


def test_context_merges_ok_results_in_order_and_start_context_wins() -> None:
    run = new_run()
    run.start_context = {"schedule": {"signal_id": "s1"}}
    a, b, c = runnable(run, "a"), runnable(run, "b"), runnable(run, "c")
    run.plan([a, b, c], now=T0)
    run.apply_result(a.runnable_key, outcome="ok", result={"x": 1, "schedule": "no"}, now=T0)
    run.apply_result(b.runnable_key, outcome="error", error={"message": "boom"}, now=T0)
    run.apply_result(c.runnable_key, outcome="ok", result={"x": 2}, now=T0)

    assert run.context == {"x": 2, "schedule": {"signal_id": "s1"}}


def test_pause_and_resolution_follow_the_boundary_kind() -> None:
    run = new_run()
    run.pause("review", kind=ManualKind.APPROVAL, metadata={"to": "ops"}, now=T0)
    assert run.status == RunStatus.PAUSED
    assert run.manual_state is not None and run.manual_state["kind"] == "approval"

    with pytest.raises(ManualStepMismatch):
        run.resolve_manual(ManualAction.RESUMED, now=T0)
    step = run.resolve_manual(ManualAction.APPROVED, result={"approved": True}, now=T0)

    assert step == "review" and run.manual_state is None
    with pytest.raises(ManualStepMismatch):
        run.resolve_manual(ManualAction.APPROVED, now=T0)


def test_same_pause_again_is_idempotent_and_another_pause_is_refused() -> None:
    run = new_run()
    run.pause("hold", kind=ManualKind.PAUSE, now=T0)
    run.collect_events()

    assert run.pause("hold", kind=ManualKind.PAUSE, now=T0) is False
    with pytest.raises(ActiveManualStep):
        run.pause("other", kind=ManualKind.PAUSE, now=T0)
    assert run.pending_events == []


def test_command_receipts_redact_sensitive_metadata_recursively() -> None:
    run = new_run()

    run.receive_command(
        "cancel_run",
        metadata={"password": "p", "nested": {"Api-Key": "k", "list": [{"token": "t"}]}, "ok": 1},
        idempotency_key="k1",
        actor="ops",
        now=T0,
    )

    receipt = run.command_history[-1]
    assert receipt["metadata"] == {
        "password": REDACTED,
        "nested": {"Api-Key": REDACTED, "list": [{"token": REDACTED}]},
        "ok": 1,
    }
    assert run.find_command("cancel_run", "k1") is receipt
    assert run.find_command("cancel_run", "k2") is None


def test_child_links_are_idempotent_and_conflicts_refused() -> None:
    run = new_run()
    child = uuid4()
    link = {
        "child_run_id": child,
        "child_workflow": "Child",
        "child_trigger": "manual",
        "child_key": "k",
        "origin": {"step": "spawn"},
    }
    assert run.record_child_run(**link, now=T0) is True  # type: ignore[arg-type]
    assert run.record_child_run(**link, now=T0) is False  # type: ignore[arg-type]

    with pytest.raises(ConflictingChildRun):
        run.record_child_run(**{**link, "child_key": "other"}, now=T0)  # type: ignore[arg-type]


def test_terminal_run_refuses_every_later_fact() -> None:
    run = new_run()
    planned = runnable(run, "a")
    run.plan([planned], now=T0)
    run.pause("hold", kind=ManualKind.PAUSE, now=T0)

    run.end(TerminalStatus.CANCELLED, now=T0)

    assert run.status == RunStatus.CANCELLED and run.is_terminal and run.manual_state is None
    with pytest.raises(RunTerminal):
        run.end(TerminalStatus.COMPLETED, now=T0)
    with pytest.raises(RunTerminal):
        run.plan([runnable(run, "b")], now=T0)
    with pytest.raises(RunTerminal):
        run.apply_result(planned.runnable_key, outcome="ok", now=T0)
    with pytest.raises(RunTerminal):
        run.pause("again", kind=ManualKind.PAUSE, now=T0)
    with pytest.raises(RunTerminal):
        run.resolve_manual(ManualAction.RESUMED, now=T0)
    with pytest.raises(RunTerminal):
        run.record_child_run(
            child_run_id=uuid4(),
            child_workflow="C",
            child_trigger=None,
            child_key="k",
            origin={},
            now=T0,
        )
