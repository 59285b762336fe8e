"""Workflow authoring: the DSL, `WorkflowSpec` data, validation and the step contract.

This layer is pure: no I/O, no event sourcing. The runtime builds on it.
"""

from squidmesh_es.workflow._conditions import Condition, equals, greater_than, less_than
from squidmesh_es.workflow._declarations import (
    StepDeclaration,
    TransitionDeclaration,
    approval,
    cron,
    log,
    manual,
    pause,
    step,
    transition,
    wait,
)
from squidmesh_es.workflow._dsl import Workflow
from squidmesh_es.workflow._editor import RUNTIME_OWNED_FIELDS, EditorSpec
from squidmesh_es.workflow._elements import (
    Compensation,
    Deadline,
    PayloadField,
    StepSpec,
    TransitionSpec,
    TriggerSpec,
)
from squidmesh_es.workflow._json import JSONObject, JSONValue, canonical_json, is_json_value
from squidmesh_es.workflow._limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    Limits,
    json_size,
)
from squidmesh_es.workflow._loop_local import LoopLocal
from squidmesh_es.workflow._mapping import ContextPath, InputBinding, run_state, select_input
from squidmesh_es.workflow._payload import today_iso8601
from squidmesh_es.workflow._registry import ActionEntry, ActionRegistry
from squidmesh_es.workflow._retry import NO_RETRY, Backoff, RetryPolicy
from squidmesh_es.workflow._runner import OutcomeStatus, StepOutcome, run_step
from squidmesh_es.workflow._spec import Route, SpecEdge, WorkflowSpec
from squidmesh_es.workflow._steps import (
    ChildRun,
    ChildRunStarter,
    Defer,
    Error,
    Ok,
    ParentRun,
    Retry,
    Step,
    StepContext,
    StepResult,
)
from squidmesh_es.workflow._validation import validate_spec
from squidmesh_es.workflow._vocab import (
    COMPLETE,
    BackoffType,
    Complete,
    ConditionOperator,
    CronIdempotency,
    DefaultFactory,
    EdgeType,
    Escalation,
    LogLevel,
    Outcome,
    PayloadType,
    Recovery,
    StepKind,
    TriggerType,
    WorkflowMode,
)

__all__ = [
    "COMPLETE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "NO_RETRY",
    "RUNTIME_OWNED_FIELDS",
    "ActionEntry",
    "ActionRegistry",
    "Backoff",
    "BackoffType",
    "ChildRun",
    "ChildRunStarter",
    "Compensation",
    "Complete",
    "Condition",
    "ConditionOperator",
    "ContextPath",
    "CronIdempotency",
    "Deadline",
    "DefaultFactory",
    "Defer",
    "EdgeType",
    "EditorSpec",
    "Error",
    "Escalation",
    "InputBinding",
    "JSONObject",
    "JSONValue",
    "Limits",
    "LogLevel",
    "LoopLocal",
    "Ok",
    "Outcome",
    "OutcomeStatus",
    "ParentRun",
    "PayloadField",
    "PayloadType",
    "Recovery",
    "Retry",
    "RetryPolicy",
    "Route",
    "SpecEdge",
    "Step",
    "StepContext",
    "StepDeclaration",
    "StepKind",
    "StepOutcome",
    "StepResult",
    "StepSpec",
    "TransitionDeclaration",
    "TransitionSpec",
    "TriggerSpec",
    "TriggerType",
    "Workflow",
    "WorkflowMode",
    "WorkflowSpec",
    "approval",
    "canonical_json",
    "cron",
    "equals",
    "greater_than",
    "is_json_value",
    "json_size",
    "less_than",
    "log",
    "manual",
    "pause",
    "run_state",
    "run_step",
    "select_input",
    "step",
    "today_iso8601",
    "transition",
    "validate_spec",
    "wait",
]
