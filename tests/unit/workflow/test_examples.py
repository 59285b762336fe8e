"""The reference workflows in examples/: valid, runnable as scripts, and walkable step by step.

The walk drives each workflow with the pure helpers the engine uses (payload validation,
input selection, the step runner, output placement, route selection), so the examples and
the helpers are checked together before any journal exists.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest

from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Outcome,
    OutcomeStatus,
    StepContext,
    StepKind,
    Workflow,
    WorkflowMode,
    run_state,
    run_step,
    validate_spec,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = {
    "payment_recovery": "PaymentRecovery",
    "manual_approval": "ManualApproval",
    "dependency_recovery": "DependencyRecovery",
    "saga_checkout": "SagaCheckout",
    "daily_digest": "DailyDigest",
}
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RUN_ID = UUID("00000000-0000-4000-8000-00000000000a")


def _example(module_name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path.remove(str(ROOT / "examples"))


def _workflow(module_name: str) -> type[Workflow]:
    workflow = getattr(_example(module_name), EXAMPLES[module_name])
    assert isinstance(workflow, type) and issubclass(workflow, Workflow)
    return workflow


def _context(workflow: type[Workflow], step: str, attempt: int) -> StepContext:
    return StepContext(
        run_id=RUN_ID,
        workflow=workflow.name,
        step=step,
        attempt=attempt,
        runnable_key=f"{step}:{attempt}",
        idempotency_key=f"{RUN_ID}:{step}",
        schedule={"signal_id": "daily:2026-03-01"},
    )


def _run_custom(workflow: type[Workflow], step: str, state: JSONObject) -> Any:
    spec_step = workflow.to_spec().step(step)
    attempt = 1
    while True:
        outcome = run_step(
            workflow.step_class(step),
            spec_step.select_input(state),
            _context(workflow, step, attempt),
        )
        if outcome.status is OutcomeStatus.RETRY and spec_step.retry_policy.allows_retry_after(
            attempt
        ):
            attempt += 1
            continue
        return outcome


def walk(
    workflow: type[Workflow],
    payload: JSONObject,
    *,
    trigger: str | None = None,
    decision: tuple[Outcome, JSONObject] | None = None,
) -> tuple[list[str], JSONObject, str]:
    """Run a transition workflow in memory: visited steps, final context, how it ended."""
    spec = workflow.to_spec()
    run_input = workflow.validate_payload(payload, trigger, now=NOW)
    context: JSONObject = {}
    visited: list[str] = []
    current = spec.entry_step
    while current is not None and current != COMPLETE:
        step = spec.step(current)
        visited.append(current)
        if step.kind is StepKind.CUSTOM:
            outcome = _run_custom(workflow, current, run_state(run_input, context))
            if outcome.status is OutcomeStatus.OK:
                context = step.place_output(context, outcome.output)
            result = outcome.outcome
        elif step.kind is StepKind.APPROVAL:
            assert decision is not None
            result, decision_output = decision
            context = step.place_output(context, decision_output)
        else:
            result = Outcome.OK
        route = spec.select_route(current, result, run_state(run_input, context))
        if route is None:
            return visited, context, f"failed at {current}"
        current = route.to
    return visited, context, "completed"


@pytest.mark.parametrize(("module_name", "workflow_name"), EXAMPLES.items())
def test_example_is_a_valid_workflow(module_name: str, workflow_name: str) -> None:
    spec = _workflow(module_name).to_spec()

    validate_spec(spec)
    assert spec.workflow == workflow_name


@pytest.mark.parametrize("module_name", EXAMPLES)
def test_example_runs_as_a_script_and_prints_its_shape(module_name: str, tmp_path: Path) -> None:
    spec = _workflow(module_name).to_spec()

    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{module_name}.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"fingerprint {spec.fingerprint}" in result.stdout
    assert all(name in result.stdout for name in spec.step_names)


def test_saga_checkout_script_rolls_back_the_declined_order(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "saga_checkout.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )

    assert "o-100: completed" in result.stdout
    assert "o-200: failed" in result.stdout
    declined = result.stdout.split("o-200: failed", 1)[1]
    assert declined.index("compensate:authorize_payment") < declined.index(
        "compensate:reserve_inventory"
    )
    assert "'compensated': ['authorize_payment', 'reserve_inventory']" in declined


def test_payment_recovery_notifies_when_the_gateway_settles() -> None:
    workflow = _workflow("payment_recovery")
    payload = {
        "account_id": "acct_1",
        "invoice_id": "inv_1",
        "attempt_id": "a1",
        "gateway_url": "https://gw",
    }

    visited, context, ending = walk(workflow, payload)

    assert ending == "completed"
    assert visited[-1] == "notify_customer"
    assert context["gateway_check"] == {"invoice_id": "inv_1", "status": "settled"}


def test_payment_recovery_credits_after_the_gateway_exhausts_its_retries() -> None:
    workflow = _workflow("payment_recovery")
    payload = {
        "account_id": "acct_1",
        "invoice_id": "inv_1",
        "attempt_id": "a1",
        "gateway_url": "https://unavailable",
    }
    route = workflow.to_spec().select_route("check_gateway_status", Outcome.ERROR, {})

    visited, context, ending = walk(workflow, payload)

    assert (ending, visited[-1]) == ("completed", "issue_gateway_credit")
    assert context["credit"] == {"invoice_id": "inv_1", "reason": "gateway_unavailable"}
    assert route is not None and route.recovery == "compensation"


@pytest.mark.parametrize(
    ("outcome", "recorded"), [(Outcome.OK, "approved"), (Outcome.ERROR, "rejected")]
)
def test_manual_approval_records_the_decision(outcome: Outcome, recorded: str) -> None:
    workflow = _workflow("manual_approval")
    decision: JSONObject = {"decision": outcome.value, "actor": "ops_123"}

    visited, context, ending = walk(
        workflow, {"account_id": "acct_1"}, decision=(outcome, decision)
    )

    assert ending == "completed" and len(visited) == 2
    assert context["approval"] == {"status": recorded, "account_id": "acct_1", "by": "ops_123"}


def test_dependency_recovery_joins_both_roots_with_mapped_input() -> None:
    workflow = _workflow("dependency_recovery")
    spec = workflow.to_spec()
    run_input = workflow.validate_payload({"account_id": "acct_1", "invoice_id": "inv_9"})
    context: JSONObject = {}

    assert spec.mode is WorkflowMode.DEPENDENCY
    assert spec.entry_steps == ("load_account", "load_invoice")
    for root in spec.entry_steps:
        outcome = _run_custom(workflow, root, run_state(run_input, context))
        context = spec.step(root).place_output(context, outcome.output)
    (join,) = spec.dependents_of("load_account")
    assert spec.dependencies_of(join) == ("load_account", "load_invoice")
    join_input = spec.step(join).select_input(run_state(run_input, context))
    outcome = _run_custom(workflow, join, run_state(run_input, context))

    assert join_input == {"account_id": "acct_1", "invoice_id": "inv_9", "account_tier": "standard"}
    assert outcome.output == {
        "notification": {"account_id": "acct_1", "invoice_id": "inv_9", "template": "standard"}
    }


def test_saga_checkout_capture_failure_has_no_route_and_compensations_undo() -> None:
    workflow = _workflow("saga_checkout")
    payload = {"order_id": "o1", "sku": "sku_1", "amount_cents": 1500, "decline_capture": True}

    visited, context, ending = walk(workflow, payload)

    assert ending == "failed at capture_payment"
    compensations = []
    for step in reversed(visited[:-1]):
        compensation = workflow.compensation_class(step)
        assert compensation is not None
        compensation_input: JSONObject = {"step": {"name": step, "output": context}}
        compensations.append(
            run_step(compensation, compensation_input, _context(workflow, step, 1))
        )
    assert [c.output for c in compensations] == [
        {"voided_authorization": {"order_id": "o1", "amount_cents": 1500, "status": "voided"}},
        {"released_inventory": {"order_id": "o1", "sku": "sku_1", "status": "released"}},
    ]


@pytest.mark.parametrize("trigger", ["manual_digest", "daily_digest"])
def test_daily_digest_completes_from_either_trigger(trigger: str) -> None:
    workflow = _workflow("daily_digest")

    visited, context, ending = walk(workflow, {}, trigger=trigger)

    assert ending == "completed"
    assert context["digest"]["content"] == (
        "Digest for 2026-03-01\n- Release 0.1 is out\n- Retries now back off exponentially"
    )
    assert context["delivery"]["lines"] == 3
