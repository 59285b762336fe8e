"""Spec data for workflow tests: small valid specs to break one rule at a time."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from squidmesh_es.errors import WorkflowValidationError
from squidmesh_es.workflow import ActionRegistry, validate_spec

SpecData = dict[str, Any]


def transition_spec() -> SpecData:
    """load -> check -> notify -> complete, with an error route from check to credit."""
    return {
        "workflow": "billing",
        "version": "v1",
        "triggers": [{"name": "go", "type": "manual"}],
        "payload": [{"name": "invoice_id", "type": "string", "required": True, "nullable": False}],
        "steps": [
            {"name": "load", "kind": "custom", "ref": "billing.steps:Load"},
            {"name": "check", "kind": "custom", "ref": "billing.steps:Check"},
            {"name": "notify", "kind": "custom", "ref": "billing.steps:Notify"},
            {"name": "credit", "kind": "custom", "ref": "billing.steps:Credit"},
        ],
        "transitions": [
            {"from": "load", "on": "ok", "to": "check"},
            {"from": "check", "on": "ok", "to": "notify"},
            {"from": "check", "on": "error", "to": "credit", "recovery": "compensation"},
            {"from": "notify", "on": "ok", "to": "complete"},
            {"from": "credit", "on": "ok", "to": "complete"},
        ],
    }


def dependency_spec() -> SpecData:
    """Two roots, account and invoice, joined by prepare."""
    return {
        "workflow": "joins",
        "triggers": [{"name": "go", "type": "manual"}],
        "steps": [
            {"name": "account", "kind": "custom", "ref": "billing.steps:Account"},
            {"name": "invoice", "kind": "custom", "ref": "billing.steps:Invoice"},
            {
                "name": "prepare",
                "kind": "custom",
                "ref": "billing.steps:Prepare",
                "after": ["account", "invoice"],
            },
        ],
    }


def changed(data: SpecData, change: Callable[[SpecData], object]) -> SpecData:
    """A deep copy of `data` after `change` edits it in place."""
    copied = copy.deepcopy(data)
    change(copied)
    return copied


def issues_of(
    data: object, *, action_registry: ActionRegistry | None = None, runtime_authored: bool = False
) -> set[tuple[tuple[str | int, ...], str]]:
    """The (path, code) pairs `validate_spec` reports for `data`; fails if it reports none."""
    with pytest.raises(WorkflowValidationError) as caught:
        validate_spec(
            data,  # type: ignore[arg-type]
            action_registry=action_registry,
            runtime_authored=runtime_authored,
        )
    return {(issue.path, issue.code) for issue in caught.value.issues}
