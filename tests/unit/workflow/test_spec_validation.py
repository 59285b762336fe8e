"""Every validation rule, broken once on an otherwise valid spec: its code and its path."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_builders import SpecData, changed, dependency_spec, issues_of, transition_spec

from squidmesh_es.errors import WorkflowValidationError
from squidmesh_es.workflow import WorkflowSpec, validate_spec

T, D = transition_spec, dependency_spec


def _step(data: SpecData, name: str) -> dict[str, Any]:
    return next(step for step in data["steps"] if step["name"] == name)


def _cron(data: SpecData, **fields: object) -> None:
    data["triggers"] = [{"name": "nightly", "type": "cron", **fields}]


def _add_step(data: SpecData, step: dict[str, Any], *routes: dict[str, Any]) -> None:
    data["steps"].append(step)
    data["transitions"].extend(routes)


CASES: list[tuple[str, Any, Any, tuple[str | int, ...], str]] = [
    # structure
    ("empty workflow name", T, lambda d: d.update(workflow=""), ("workflow",), "invalid_workflow"),
    (
        "workflow name not a string",
        T,
        lambda d: d.update(workflow=7),
        ("workflow",),
        "invalid_workflow",
    ),
    (
        "blank version",
        T,
        lambda d: d.update(version=" v1"),
        ("version",),
        "invalid_definition_version",
    ),
    ("no triggers", T, lambda d: d.update(triggers=[]), ("triggers",), "missing_triggers"),
    ("triggers absent", T, lambda d: d.pop("triggers"), ("triggers",), "missing_triggers"),
    ("steps absent", T, lambda d: d.pop("steps"), ("steps",), "missing_steps"),
    ("no steps", T, lambda d: d.update(steps=[], transitions=[]), ("steps",), "missing_steps"),
    ("steps not a list", T, lambda d: d.update(steps="load"), ("steps",), "invalid_collection"),
    ("unknown top-level field", T, lambda d: d.update(color="red"), ("color",), "invalid_spec"),
    # triggers
    (
        "bad trigger name",
        T,
        lambda d: d["triggers"][0].update(name="go now"),
        ("triggers", 0, "name"),
        "invalid_trigger_name",
    ),
    (
        "duplicate trigger",
        T,
        lambda d: d["triggers"].append({"name": "go", "type": "manual"}),
        ("triggers", 1, "name"),
        "duplicate_trigger_name",
    ),
    (
        "unknown trigger type",
        T,
        lambda d: d["triggers"][0].update(type="webhook"),
        ("triggers", 0, "type"),
        "invalid_trigger_type",
    ),
    (
        "trigger not an object",
        T,
        lambda d: d.update(triggers=["go"]),
        ("triggers", 0),
        "invalid_trigger",
    ),
    (
        "manual trigger with a timezone",
        T,
        lambda d: d["triggers"][0].update(timezone="Etc/UTC"),
        ("triggers", 0, "timezone"),
        "invalid_trigger_config",
    ),
    (
        "cron without expression",
        T,
        lambda d: _cron(d, timezone="Etc/UTC"),
        ("triggers", 0, "expression"),
        "invalid_cron_expression",
    ),
    (
        "cron with four fields",
        T,
        lambda d: _cron(d, expression="0 9 * *", timezone="Etc/UTC"),
        ("triggers", 0, "expression"),
        "invalid_cron_expression",
    ),
    (
        "cron minute out of range",
        T,
        lambda d: _cron(d, expression="61 * * * *", timezone="Etc/UTC"),
        ("triggers", 0, "expression"),
        "invalid_cron_expression",
    ),
    (
        "cron weekday out of range",
        T,
        lambda d: _cron(d, expression="0 9 * * 8", timezone="Etc/UTC"),
        ("triggers", 0, "expression"),
        "invalid_cron_expression",
    ),
    (
        "cron with a seconds field",
        T,
        lambda d: _cron(d, expression="0 0 9 * * *", timezone="Etc/UTC"),
        ("triggers", 0, "expression"),
        "invalid_cron_expression",
    ),
    (
        "cron timezone no zone database knows",
        T,
        lambda d: _cron(d, expression="@daily", timezone="Mars/Olympus"),
        ("triggers", 0, "timezone"),
        "invalid_cron_timezone",
    ),
    (
        "cron without timezone",
        T,
        lambda d: _cron(d, expression="@daily"),
        ("triggers", 0, "timezone"),
        "invalid_cron_timezone",
    ),
    (
        "cron with unknown idempotency",
        T,
        lambda d: _cron(d, expression="@daily", timezone="Etc/UTC", idempotency="always"),
        ("triggers", 0, "idempotency"),
        "invalid_cron_idempotency",
    ),
    # payload
    (
        "bad payload field name",
        T,
        lambda d: d["payload"][0].update(name="invoice id"),
        ("payload", 0, "name"),
        "invalid_payload_field_name",
    ),
    (
        "unknown payload type",
        T,
        lambda d: d["payload"][0].update(type="date"),
        ("payload", 0, "type"),
        "invalid_payload_field_type",
    ),
    (
        "default of the wrong type",
        T,
        lambda d: d["payload"].append(
            {"name": "count", "type": "integer", "required": False, "default": "seven"}
        ),
        ("payload", 1, "default"),
        "invalid_payload_default",
    ),
    (
        "null default on a non-nullable field",
        T,
        lambda d: d["payload"].append(
            {"name": "count", "type": "integer", "required": False, "default": None}
        ),
        ("payload", 1, "default"),
        "invalid_payload_default",
    ),
    (
        "boolean default for an integer",
        T,
        lambda d: d["payload"].append(
            {"name": "count", "type": "integer", "required": False, "default": True}
        ),
        ("payload", 1, "default"),
        "invalid_payload_default",
    ),
    (
        "today default on an integer",
        T,
        lambda d: d["payload"].append(
            {
                "name": "day",
                "type": "integer",
                "required": False,
                "default_factory": "today_iso8601",
            }
        ),
        ("payload", 1, "default_factory"),
        "invalid_payload_default",
    ),
    (
        "required field with a default",
        T,
        lambda d: d["payload"][0].update(default="inv_1"),
        ("payload", 0),
        "invalid_payload_field_opts",
    ),
    (
        "payload field twice",
        T,
        lambda d: d["payload"].append(dict(d["payload"][0])),
        ("payload", 1, "name"),
        "conflicting_payload_field",
    ),
    (
        "payload field not an object",
        T,
        lambda d: d.update(payload=["invoice_id"]),
        ("payload", 0),
        "invalid_payload_field",
    ),
    # steps
    (
        "step named complete",
        T,
        lambda d: _step(d, "notify").update(name="complete"),
        ("steps", 2, "name"),
        "invalid_step_name",
    ),
    (
        "step name with a colon",
        T,
        lambda d: _step(d, "credit").update(name="a:b"),
        ("steps", 3, "name"),
        "invalid_step_name",
    ),
    (
        "step name twice",
        T,
        lambda d: _step(d, "credit").update(name="notify"),
        ("steps", 3, "name"),
        "duplicate_step_name",
    ),
    ("step not an object", T, lambda d: d["steps"].append("extra"), ("steps", 4), "invalid_step"),
    (
        "unknown step kind",
        T,
        lambda d: _step(d, "load").update(kind="shell"),
        ("steps", 0, "kind"),
        "invalid_step_module",
    ),
    (
        "custom step with ref and action",
        T,
        lambda d: _step(d, "load").update(action="billing.load"),
        ("steps", 0, "ref"),
        "invalid_step_module",
    ),
    (
        "ref that is neither module:QualName nor a declared ref",
        T,
        lambda d: _step(d, "load").update(ref="os:system()"),
        ("steps", 0, "ref"),
        "invalid_step_module",
    ),
    (
        "built-in step with a ref",
        T,
        lambda d: _add_step(
            d,
            {"name": "hold", "kind": "pause", "ref": "x:Y"},
            {"from": "notify", "on": "error", "to": "hold"},
            {"from": "hold", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "ref"),
        "invalid_step_module",
    ),
    (
        "custom step without implementation",
        T,
        lambda d: _step(d, "load").pop("ref"),
        ("steps", 0, "action"),
        "missing_action_key",
    ),
    (
        "malformed action key",
        T,
        lambda d: _step(d, "load").update(ref=None, action="load invoice!"),
        ("steps", 0, "action"),
        "invalid_action_key",
    ),
    (
        "option the kind does not take",
        T,
        lambda d: _add_step(
            d,
            {"name": "hold", "kind": "wait", "duration_ms": 5, "retry": {"max_attempts": 2}},
            {"from": "notify", "on": "error", "to": "hold"},
            {"from": "hold", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "retry"),
        "invalid_step_opts",
    ),
    (
        "unknown step field",
        T,
        lambda d: _step(d, "load").update(colour="red"),
        ("steps", 0, "colour"),
        "invalid_step_opts",
    ),
    (
        "empty input mapping",
        T,
        lambda d: _step(d, "load").update(input=[]),
        ("steps", 0, "input"),
        "invalid_step_input_mapping",
    ),
    (
        "input keys twice",
        T,
        lambda d: _step(d, "load").update(
            input=[{"key": "a", "path": ["a"]}, {"key": "a", "path": ["b"]}]
        ),
        ("steps", 0, "input"),
        "invalid_step_input_mapping",
    ),
    (
        "input with an empty path",
        T,
        lambda d: _step(d, "load").update(input=[{"key": "a", "path": []}]),
        ("steps", 0, "input", 0),
        "invalid_step_input_mapping",
    ),
    (
        "input path not a list",
        T,
        lambda d: _step(d, "load").update(input=[{"key": "a", "path": "a.b"}]),
        ("steps", 0, "input", 0, "path"),
        "invalid_step_input_mapping",
    ),
    (
        "empty output key",
        T,
        lambda d: _step(d, "load").update(output=""),
        ("steps", 0, "output"),
        "invalid_step_output_mapping",
    ),
    (
        "output key not a string",
        T,
        lambda d: _step(d, "load").update(output=["invoice"]),
        ("steps", 0, "output"),
        "invalid_step_output_mapping",
    ),
    (
        "retry not an object",
        T,
        lambda d: _step(d, "check").update(retry="often"),
        ("steps", 1, "retry"),
        "invalid_step_retry_opts",
    ),
    (
        "zero max attempts",
        T,
        lambda d: _step(d, "check").update(retry={"max_attempts": 0}),
        ("steps", 1, "retry", "max_attempts"),
        "invalid_step_retry_max_attempts",
    ),
    (
        "max attempts as a string",
        T,
        lambda d: _step(d, "check").update(retry={"max_attempts": "3"}),
        ("steps", 1, "retry", "max_attempts"),
        "invalid_step_retry_max_attempts",
    ),
    (
        "backoff max below min",
        T,
        lambda d: _step(d, "check").update(
            retry={
                "max_attempts": 3,
                "backoff": {"type": "exponential", "min_ms": 500, "max_ms": 100},
            }
        ),
        ("steps", 1, "retry", "backoff"),
        "invalid_step_retry_backoff",
    ),
    (
        "zero fixed delay",
        T,
        lambda d: _step(d, "check").update(
            retry={"max_attempts": 3, "backoff": {"type": "fixed", "delay_ms": 0}}
        ),
        ("steps", 1, "retry", "backoff"),
        "invalid_step_retry_backoff",
    ),
    (
        "fixed backoff with min and max",
        T,
        lambda d: _step(d, "check").update(
            retry={"max_attempts": 3, "backoff": {"type": "fixed", "min_ms": 1, "max_ms": 2}}
        ),
        ("steps", 1, "retry", "backoff"),
        "invalid_step_retry_backoff",
    ),
    (
        "unknown backoff type",
        T,
        lambda d: _step(d, "check").update(
            retry={"max_attempts": 3, "backoff": {"type": "linear", "delay_ms": 5}}
        ),
        ("steps", 1, "retry", "backoff", "type"),
        "invalid_step_retry_backoff",
    ),
    (
        "marker not a boolean",
        T,
        lambda d: _step(d, "notify").update(irreversible="yes"),
        ("steps", 2, "irreversible"),
        "invalid_step_recovery_marker",
    ),
    (
        "irreversible and compensatable",
        T,
        lambda d: _step(d, "notify").update(irreversible=True, compensatable=True),
        ("steps", 2),
        "conflicting_step_recovery_markers",
    ),
    (
        "compensation without implementation",
        T,
        lambda d: _step(d, "load").update(compensate={}),
        ("steps", 0, "compensate"),
        "invalid_step_compensate_callback",
    ),
    (
        "compensation of an irreversible step",
        T,
        lambda d: _step(d, "load").update(
            compensate={"ref": "billing.steps:Undo"}, irreversible=True
        ),
        ("steps", 0, "compensate"),
        "conflicting_step_compensation",
    ),
    (
        "compensation of a non-compensatable step",
        T,
        lambda d: _step(d, "load").update(
            compensate={"ref": "billing.steps:Undo"}, compensatable=False
        ),
        ("steps", 0, "compensate"),
        "conflicting_step_compensation",
    ),
    (
        "wait without duration",
        T,
        lambda d: _add_step(
            d,
            {"name": "hold", "kind": "wait"},
            {"from": "notify", "on": "error", "to": "hold"},
            {"from": "hold", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "duration_ms"),
        "invalid_wait_duration",
    ),
    (
        "wait of zero",
        T,
        lambda d: _add_step(
            d,
            {"name": "hold", "kind": "wait", "duration_ms": 0},
            {"from": "notify", "on": "error", "to": "hold"},
            {"from": "hold", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "duration_ms"),
        "invalid_wait_duration",
    ),
    (
        "log without message",
        T,
        lambda d: _add_step(
            d,
            {"name": "note", "kind": "log", "message": "  "},
            {"from": "notify", "on": "error", "to": "note"},
            {"from": "note", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "message"),
        "invalid_log_message",
    ),
    (
        "log at an unknown level",
        T,
        lambda d: _add_step(
            d,
            {"name": "note", "kind": "log", "message": "hi", "level": "loud"},
            {"from": "notify", "on": "error", "to": "note"},
            {"from": "note", "on": "ok", "to": "complete"},
        ),
        ("steps", 4, "level"),
        "invalid_log_level",
    ),
    (
        "due soon after the deadline",
        T,
        lambda d: _step(d, "check").update(deadline={"within_ms": 1000, "due_soon_ms": 1000}),
        ("steps", 1, "deadline"),
        "invalid_step_deadline",
    ),
    # transitions
    (
        "transition not an object",
        T,
        lambda d: d["transitions"].append("load->check"),
        ("transitions", 5),
        "invalid_transition",
    ),
    (
        "transition without target",
        T,
        lambda d: d["transitions"][0].pop("to"),
        ("transitions", 0, "to"),
        "invalid_transition",
    ),
    (
        "unknown outcome",
        T,
        lambda d: d["transitions"][0].update(on="maybe"),
        ("transitions", 0, "on"),
        "invalid_transition_outcome",
    ),
    (
        "unknown source",
        T,
        lambda d: d["transitions"].append({"from": "ghost", "on": "ok", "to": "notify"}),
        ("transitions", 5, "from"),
        "unknown_transition_source",
    ),
    (
        "unknown target",
        T,
        lambda d: d["transitions"][0].update(to="ghost"),
        ("transitions", 0, "to"),
        "unknown_transition_target",
    ),
    (
        "second unconditional route",
        T,
        lambda d: d["transitions"].append({"from": "load", "on": "ok", "to": "credit"}),
        ("transitions", 5),
        "duplicate_transition",
    ),
    (
        "the same conditional route twice",
        T,
        lambda d: d["transitions"].extend(
            [
                {
                    "from": "load",
                    "on": "ok",
                    "to": "notify",
                    "condition": {"path": ["x"], "equals": 1},
                }
            ]
            * 2
        ),
        ("transitions", 6),
        "duplicate_transition",
    ),
    (
        "recovery on an ok route",
        T,
        lambda d: d["transitions"][0].update(recovery="undo"),
        ("transitions", 0, "recovery"),
        "invalid_transition_recovery",
    ),
    (
        "unknown recovery",
        T,
        lambda d: d["transitions"][2].update(recovery="rollback"),
        ("transitions", 2, "recovery"),
        "invalid_transition_recovery",
    ),
    (
        "numeric condition on a string",
        T,
        lambda d: d["transitions"][1].update(condition={"path": ["risk"], "greater_than": "high"}),
        ("transitions", 1, "condition"),
        "invalid_transition_condition",
    ),
    (
        "condition with two operators",
        T,
        lambda d: d["transitions"][1].update(
            condition={"path": ["risk"], "equals": 1, "less_than": 2}
        ),
        ("transitions", 1, "condition"),
        "invalid_transition_condition",
    ),
    (
        "condition with an empty path",
        T,
        lambda d: d["transitions"][1].update(condition={"path": [], "equals": 1}),
        ("transitions", 1, "condition"),
        "invalid_transition_condition",
    ),
    (
        "condition on a manual step",
        T,
        lambda d: _add_step(
            d,
            {"name": "hold", "kind": "pause"},
            {"from": "notify", "on": "error", "to": "hold"},
            {
                "from": "hold",
                "on": "ok",
                "to": "complete",
                "condition": {"path": ["a"], "equals": 1},
            },
        ),
        ("transitions", 6, "condition"),
        "manual_step_transition_condition",
    ),
    (
        "approval without a reject route",
        T,
        lambda d: _add_step(
            d,
            {"name": "review", "kind": "approval"},
            {"from": "notify", "on": "error", "to": "review"},
            {"from": "review", "on": "ok", "to": "complete"},
        ),
        ("steps", 4),
        "missing_approval_transitions",
    ),
    (
        "transition cycle",
        T,
        lambda d: d["transitions"].append({"from": "notify", "on": "error", "to": "check"}),
        ("transitions",),
        "transition_cycle",
    ),
    (
        "every step targeted",
        T,
        lambda d: d["transitions"].append({"from": "credit", "on": "error", "to": "load"}),
        ("entry_steps",),
        "missing_entry_steps",
    ),
    ("two roots", T, lambda d: d["transitions"].pop(0), ("entry_step",), "invalid_entry_step"),
    (
        "declared entry steps disagree",
        T,
        lambda d: d.update(entry_steps=["check"]),
        ("entry_steps",),
        "invalid_entry_steps",
    ),
    (
        "declared entry step unknown",
        T,
        lambda d: d.update(entry_steps=["ghost"]),
        ("entry_steps", 0),
        "unknown_entry_step",
    ),
    (
        "declared initial step disagrees",
        T,
        lambda d: d.update(initial_step="check"),
        ("initial_step",),
        "invalid_initial_step",
    ),
    (
        "declared initial step unknown",
        T,
        lambda d: d.update(initial_step="ghost"),
        ("initial_step",),
        "unknown_step_reference",
    ),
    (
        "declared entry step disagrees",
        T,
        lambda d: d.update(entry_step="notify"),
        ("entry_step",),
        "invalid_entry_step",
    ),
    # dependency mode
    (
        "empty after list",
        D,
        lambda d: _step(d, "invoice").update(after=[]),
        ("steps", 1, "after"),
        "invalid_step_dependencies",
    ),
    (
        "after naming a step twice",
        D,
        lambda d: _step(d, "prepare").update(after=["account", "account"]),
        ("steps", 2, "after"),
        "invalid_step_dependencies",
    ),
    (
        "unknown dependency",
        D,
        lambda d: _step(d, "prepare").update(after=["account", "ghost"]),
        ("steps", 2, "after", 1),
        "unknown_step_dependency",
    ),
    (
        "step waiting for itself",
        D,
        lambda d: _step(d, "prepare").update(after=["prepare"]),
        ("steps", 2, "after", 0),
        "self_step_dependency",
    ),
    (
        "dependency cycle",
        D,
        lambda d: _step(d, "account").update(after=["prepare"]),
        ("steps",),
        "dependency_cycle",
    ),
    (
        "transitions in a dependency workflow",
        D,
        lambda d: d.update(transitions=[{"from": "account", "on": "ok", "to": "prepare"}]),
        ("transitions",),
        "dependency_transitions",
    ),
    (
        "pause in a dependency workflow",
        D,
        lambda d: d["steps"].append({"name": "hold", "kind": "pause"}),
        ("steps", 3, "kind"),
        "manual_step_in_dependency_workflow",
    ),
    (
        "approval in a dependency workflow",
        D,
        lambda d: d["steps"].append({"name": "review", "kind": "approval", "after": ["prepare"]}),
        ("steps", 3, "kind"),
        "manual_step_in_dependency_workflow",
    ),
    (
        "declared entry step in a dependency workflow",
        D,
        lambda d: d.update(entry_step="account"),
        ("entry_step",),
        "invalid_entry_step",
    ),
]


@pytest.mark.parametrize(
    ("base", "change", "path", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_broken_rule_is_reported_with_its_code_and_path(
    base: Any, change: Any, path: tuple[str | int, ...], code: str
) -> None:
    assert (path, code) in issues_of(changed(base(), change))


@pytest.mark.parametrize("base", [transition_spec, dependency_spec])
def test_reference_specs_are_valid(base: Any) -> None:
    validate_spec(base())


def test_every_issue_is_collected_not_just_the_first() -> None:
    def break_three_rules(data: SpecData) -> None:
        data["triggers"] = []
        _step(data, "check")["retry"] = {"max_attempts": 0}
        data["transitions"][0]["to"] = "ghost"

    found = issues_of(changed(transition_spec(), break_three_rules))

    assert {code for _, code in found} >= {
        "missing_triggers",
        "invalid_step_retry_max_attempts",
        "unknown_transition_target",
    }


def test_every_structural_problem_is_collected() -> None:
    def break_two_shapes(data: SpecData) -> None:
        data["transitions"][0]["on"] = "maybe"
        _step(data, "load")["irreversible"] = "yes"

    found = issues_of(changed(transition_spec(), break_two_shapes))

    assert found == {
        (("transitions", 0, "on"), "invalid_transition_outcome"),
        (("steps", 0, "irreversible"), "invalid_step_recovery_marker"),
    }


def test_data_that_is_not_an_object_is_refused_as_a_spec() -> None:
    assert issues_of(["steps"]) == {((), "invalid_spec")}


def test_issue_messages_name_the_step_they_are_about() -> None:
    data = changed(
        transition_spec(), lambda d: _step(d, "check").update(retry={"max_attempts": "3"})
    )

    with pytest.raises(WorkflowValidationError) as caught:
        WorkflowSpec.from_dict(data)

    assert caught.value.issues[0].message.startswith("step 'check': ")


def test_validate_spec_accepts_a_spec_object() -> None:
    spec = WorkflowSpec.from_dict(changed(transition_spec(), lambda d: d["transitions"].pop(0)))

    with pytest.raises(WorkflowValidationError) as caught:
        validate_spec(spec)

    assert caught.value.code == "invalid_workflow_spec"
    assert caught.value.codes == {"invalid_entry_step"}


def test_a_lease_expiry_limit_round_trips_through_the_spec_form() -> None:
    data = changed(
        transition_spec(),
        lambda d: _step(d, "check").update(retry={"max_attempts": 2, "max_lease_expiries": 1}),
    )

    spec = WorkflowSpec.from_dict(data)

    assert spec.step("check").retry_policy.max_lease_expiries == 1
    assert WorkflowSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("value", [0, "2"])
def test_a_lease_expiry_limit_below_one_or_not_an_int_is_refused(value: object) -> None:
    data = changed(
        transition_spec(),
        lambda d: _step(d, "check").update(retry={"max_attempts": 2, "max_lease_expiries": value}),
    )

    assert (
        ("steps", 1, "retry", "max_lease_expiries"),
        "invalid_step_retry_max_lease_expiries",
    ) in issues_of(data)
