"""The public names of ../shared/design/API.md exist with their documented keywords.

Users, examples and acceptance tests rely on these; a rename or a dropped keyword fails here
before it reaches them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import squidmesh_es
from squidmesh_es import SquidMesh
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.runtime import Signal

RUNTIME_METHODS: dict[str, tuple[str, ...]] = {
    "start": (
        "workflow",
        "payload",
        "trigger",
        "run_id",
        "queue",
        "idempotency_key",
        "metadata",
        "now",
    ),
    "start_spec": ("spec", "payload", "trigger", "action_registry"),
    "start_cron": ("workflow", "trigger", "signal_id", "intended_window", "now"),
    "execute_next": ("owner_id", "queue", "lease_for", "heartbeat_interval", "now"),
    "inspect_run": ("run_id", "include_history"),
    "list_runs": ("workflow", "status", "limit"),
    "explain_run": ("run_id",),
    "inspect_run_graph": ("run_id", "include_history"),
    "cancel": ("run_id", "actor", "reason", "idempotency_key"),
    "replay": ("run_id", "allow_irreversible"),
    "resume": ("run_id", "actor", "comment", "metadata", "idempotency_key"),
    "approve": ("run_id", "actor", "comment", "metadata", "idempotency_key"),
    "reject": ("run_id", "actor", "comment", "metadata", "idempotency_key"),
    "apply_signal": ("signal",),
    "start_child_run": ("ctx", "workflow", "payload", "child_key", "trigger", "queue", "metadata"),
    "preview_dynamic_work": ("run_id", "proposal", "action_registry"),
    "record_dynamic_work": ("run_id", "proposal", "action_registry"),
    "schedule_dynamic_work": ("run_id", "proposal", "action_registry"),
    "recover": ("queue", "run_id"),
    "worker": ("queues", "concurrency", "owner_id"),
}

SIGNAL_CONSTRUCTORS = (
    "start_run",
    "start_cron",
    "approve_run",
    "reject_run",
    "resume_run",
    "cancel_run",
    "replay_run",
)

ERRORS = (
    "WorkflowValidationError",
    "PayloadValidationError",
    "RunNotFound",
    "InvalidRunId",
    "Conflict",
    "StaleClaim",
    "RunTerminal",
    "ManualStepMismatch",
    "UnsafeReplay",
    "InvalidReplaySource",
    "MissingScheduleIdempotencyKey",
    "ActionNotAllowed",
    "DefinitionMismatch",
)


def parameters(function: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(function).parameters)


@pytest.mark.parametrize(("method", "keywords"), RUNTIME_METHODS.items())
def test_runtime_method_takes_its_documented_keywords(
    method: str, keywords: tuple[str, ...]
) -> None:
    function = getattr(SquidMesh, method)

    assert set(keywords) <= parameters(function)


def test_construction_and_context_manager() -> None:
    assert {"queue", "clock", "workflows"} <= parameters(SquidMesh.open)
    assert callable(SquidMesh.from_env)
    with SquidMesh.open("memory://") as mesh:
        assert isinstance(mesh, SquidMesh)


@pytest.mark.parametrize("constructor", SIGNAL_CONSTRUCTORS)
def test_signal_constructor_exists(constructor: str) -> None:
    assert callable(getattr(Signal, constructor))
    assert squidmesh_es.Signal is Signal


@pytest.mark.parametrize("name", ERRORS)
def test_documented_error_has_a_stable_code(name: str) -> None:
    from squidmesh_es import errors

    error = getattr(errors, name)
    assert issubclass(error, SquidMeshError)
    assert isinstance(error.code, str) and error.code != SquidMeshError.code


def test_read_models_and_authoring_names_are_exported() -> None:
    for name in ("RunSnapshot", "RunSummary", "Explanation", "RunGraph", "redact"):
        assert hasattr(squidmesh_es, name)
    from squidmesh_es import workflow

    for name in (
        "Workflow",
        "WorkflowSpec",
        "validate_spec",
        "Step",
        "StepContext",
        "Ok",
        "Error",
        "Retry",
        "Defer",
        "ActionRegistry",
        "EditorSpec",
    ):
        assert hasattr(workflow, name)
    for name in ("to_map", "validate_map", "preview_graph", "diff"):
        assert callable(getattr(workflow.EditorSpec, name))
