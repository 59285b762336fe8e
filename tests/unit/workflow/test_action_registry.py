"""The action registry: resolution through the allowlist and every kind of refusal."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from workflow_builders import changed, issues_of, transition_spec

from squidmesh_es.errors import ActionNotAllowed, WorkflowValidationError
from squidmesh_es.workflow import (
    ActionEntry,
    ActionRegistry,
    Ok,
    Step,
    StepContext,
    WorkflowSpec,
    validate_spec,
)


class LoadInvoice(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok()


class SendReminder(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok()


class NotAStep:
    pass


class AbstractStep(Step):
    pass


REGISTRY = ActionRegistry(
    {
        "billing.load_invoice": LoadInvoice,
        "billing.send_reminder": SendReminder,
        "billing.check": LoadInvoice,
        "billing.credit": LoadInvoice,
        "billing.old_reminder": ActionEntry(SendReminder, enabled=False),
        "billing.broken": NotAStep,  # type: ignore[dict-item]
        "billing.abstract": AbstractStep,
    }
)


def _runtime_spec(**actions: str | None) -> dict[str, Any]:
    """The transition spec with action keys instead of class references."""
    keys = {
        "load": "billing.load_invoice",
        "check": "billing.check",
        "notify": "billing.send_reminder",
        "credit": "billing.credit",
    }
    keys.update(actions)

    def use_actions(data: dict[str, Any]) -> None:
        for step in data["steps"]:
            del step["ref"]
            if keys[step["name"]] is not None:
                step["action"] = keys[step["name"]]

    return changed(transition_spec(), use_actions)


def test_registered_key_resolves_to_its_class() -> None:
    assert REGISTRY.resolve("billing.load_invoice") is LoadInvoice


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("billing.unknown", "unknown_action_key"),
        ("billing.old_reminder", "disabled_action_key"),
        ("billing.broken", "incompatible_action_module"),
        ("billing.abstract", "incompatible_action_module"),
        ("load invoice!", "invalid_action_key"),
        ("", "missing_action_key"),
    ],
)
def test_refused_key_raises_action_not_allowed_with_its_reason(key: str, reason: str) -> None:
    with pytest.raises(ActionNotAllowed) as caught:
        REGISTRY.resolve(key)

    assert (caught.value.code, caught.value.reason) == ("action_not_allowed", reason)


def test_runtime_spec_with_allowed_actions_is_valid() -> None:
    validate_spec(_runtime_spec(), action_registry=REGISTRY)


def test_resolving_a_spec_gives_every_action_class() -> None:
    spec = WorkflowSpec.from_dict(_runtime_spec())

    assert REGISTRY.resolve_spec(spec) == {
        "billing.load_invoice": LoadInvoice,
        "billing.check": LoadInvoice,
        "billing.send_reminder": SendReminder,
        "billing.credit": LoadInvoice,
    }


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("billing.unknown", "unknown_action_key"),
        ("billing.old_reminder", "disabled_action_key"),
        ("billing.broken", "incompatible_action_module"),
        ("bad key!", "invalid_action_key"),
    ],
)
def test_spec_naming_a_refused_action_is_invalid_under_the_registry(action: str, code: str) -> None:
    assert (("steps", 2, "action"), code) in issues_of(
        _runtime_spec(notify=action), action_registry=REGISTRY
    )


def test_class_reference_cannot_be_resolved_in_a_runtime_authored_spec() -> None:
    data = changed(
        _runtime_spec(), lambda d: d["steps"][0].update(action=None, ref="billing.steps:Load")
    )

    assert issues_of(data, action_registry=REGISTRY, runtime_authored=True) == {
        (("steps", 0, "action"), "missing_action_key")
    }


def test_class_declared_steps_are_accepted_under_a_registry() -> None:
    data = changed(
        _runtime_spec(), lambda d: d["steps"][0].update(action=None, ref="billing.steps:Load")
    )

    validate_spec(data, action_registry=REGISTRY)


def test_a_registry_still_refuses_the_actions_of_a_class_declared_workflow() -> None:
    data = changed(
        _runtime_spec(notify="billing.unknown"),
        lambda d: d["steps"][0].update(action=None, ref="billing.steps:Load"),
    )

    assert issues_of(data, action_registry=REGISTRY) == {
        (("steps", 2, "action"), "unknown_action_key")
    }


def test_compensation_action_is_checked_too() -> None:
    data = changed(
        _runtime_spec(), lambda d: d["steps"][0].update(compensate={"action": "billing.unknown"})
    )

    assert issues_of(data, action_registry=REGISTRY) == {
        (("steps", 0, "compensate", "action"), "unknown_action_key")
    }


def test_resolving_a_spec_with_refusals_lists_them_all() -> None:
    spec = WorkflowSpec.from_dict(
        _runtime_spec(load="billing.unknown", notify="billing.old_reminder")
    )

    with pytest.raises(WorkflowValidationError) as caught:
        REGISTRY.resolve_spec(spec)

    assert caught.value.codes == {"unknown_action_key", "disabled_action_key"}


def test_nothing_is_imported_from_a_reference_in_spec_data() -> None:
    module = "squidmesh_never_imported_module"
    data = changed(transition_spec(), lambda d: d["steps"][0].update(ref=f"{module}:Thing"))

    validate_spec(data)
    assert len(WorkflowSpec.from_dict(data).fingerprint) == 64
    with pytest.raises(WorkflowValidationError):
        validate_spec(data, action_registry=REGISTRY, runtime_authored=True)

    assert module not in sys.modules


def test_registry_lists_its_keys() -> None:
    registry = ActionRegistry({"a.one": LoadInvoice, "a.two": ActionEntry(SendReminder, False)})

    assert (list(registry), len(registry), "a.two" in registry, "a.three" in registry) == (
        ["a.one", "a.two"],
        2,
        True,
        False,
    )
