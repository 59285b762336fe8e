"""The public surface of squidmesh_es.workflow, pinned: a change here is an API change."""

from __future__ import annotations

import squidmesh_es.workflow as workflow

EXPECTED = [
    "COMPLETE", "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_VALUE_BYTES", "NO_RETRY",
    "RUNTIME_OWNED_FIELDS", "ActionEntry", "ActionRegistry", "Backoff", "BackoffType",
    "ChildRun", "ChildRunStarter", "Compensation", "Complete", "Condition", "ConditionOperator",
    "ContextPath", "CronIdempotency", "Deadline", "DefaultFactory", "Defer", "EdgeType",
    "EditorSpec", "Error", "Escalation", "InputBinding", "JSONObject", "JSONValue", "Limits",
    "LogLevel", "LoopLocal", "Ok", "Outcome", "OutcomeStatus", "ParentRun", "PayloadField",
    "PayloadType", "Recovery", "Retry", "RetryPolicy", "Route", "SpecEdge", "Step",
    "StepContext", "StepDeclaration", "StepKind", "StepOutcome", "StepResult", "StepSpec",
    "TransitionDeclaration", "TransitionSpec", "TriggerSpec", "TriggerType", "Workflow",
    "WorkflowMode", "WorkflowSpec", "approval", "canonical_json", "cron", "equals",
    "greater_than", "is_json_value", "json_size", "less_than", "log", "manual", "pause",
    "run_state", "run_step", "select_input", "step", "today_iso8601", "transition",
    "validate_spec", "wait",
]  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert workflow.__all__ == EXPECTED
    assert workflow.__all__ == sorted(workflow.__all__, key=lambda n: (not n.isupper(), n))


def test_every_exported_name_exists_and_none_is_private() -> None:
    assert all(hasattr(workflow, name) and not name.startswith("_") for name in workflow.__all__)
