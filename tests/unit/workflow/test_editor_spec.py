"""Editor round trips: maps, validation of submitted maps, draft graphs and diffs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflow_builders import changed, dependency_spec, transition_spec

from squidmesh_es.errors import WorkflowValidationError
from squidmesh_es.workflow import (
    RUNTIME_OWNED_FIELDS,
    ActionRegistry,
    EditorSpec,
    Ok,
    Step,
    StepContext,
    WorkflowSpec,
)


class Load(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok()


def _codes(value: object, **options: Any) -> set[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(WorkflowValidationError) as caught:
        EditorSpec.validate_map(value, **options)
    return {(issue.path, issue.code) for issue in caught.value.issues}


def test_map_survives_json_and_validates() -> None:
    spec = WorkflowSpec.from_dict(transition_spec())

    editor_map = json.loads(json.dumps(EditorSpec.to_map(spec)))

    EditorSpec.validate_map(editor_map)
    assert WorkflowSpec.from_dict(editor_map) == spec


def test_map_has_string_keys_and_editor_fields_only() -> None:
    editor_map = EditorSpec.to_map(WorkflowSpec.from_dict(transition_spec()))

    assert set(editor_map) == {
        "workflow",
        "version",
        "triggers",
        "payload",
        "steps",
        "transitions",
        "entry_steps",
        "initial_step",
        "entry_step",
    }
    assert not set(editor_map) & set(RUNTIME_OWNED_FIELDS)


@pytest.mark.parametrize("field", RUNTIME_OWNED_FIELDS)
def test_runtime_owned_fields_are_refused(field: str) -> None:
    assert _codes({**transition_spec(), field: "x"}) == {((field,), "invalid_editor_spec")}


def test_runtime_owned_fields_and_spec_problems_are_reported_together() -> None:
    data = changed(transition_spec(), lambda d: d["transitions"][0].update(to="missing_step"))

    assert _codes({**data, "run_id": "r1", "attempts": []}) == {
        (("run_id",), "invalid_editor_spec"),
        (("attempts",), "invalid_editor_spec"),
        (("transitions", 0, "to"), "unknown_transition_target"),
        (("entry_step",), "invalid_entry_step"),
    }


def test_map_that_is_not_an_object_is_refused() -> None:
    assert _codes("steps") == {((), "invalid_editor_spec")}


def test_registry_checks_action_keys_of_the_map() -> None:
    data = changed(
        transition_spec(), lambda d: d["steps"][0].update(ref=None, action="billing.load")
    )
    registry = ActionRegistry({"billing.load": Load})

    assert _codes(data, action_registry=registry) == {
        (("steps", 1, "action"), "missing_action_key"),
        (("steps", 2, "action"), "missing_action_key"),
        (("steps", 3, "action"), "missing_action_key"),
    }


def test_preview_graph_of_a_transition_workflow() -> None:
    data = changed(
        transition_spec(),
        lambda d: d["transitions"].insert(
            1,
            {
                "from": "check",
                "on": "ok",
                "to": "credit",
                "condition": {"path": ["a"], "equals": 1},
            },
        ),
    )

    graph = EditorSpec.preview_graph(data)

    assert (graph["source"], graph["status"], graph["terminal?"]) == (
        "workflow_spec",
        "draft",
        False,
    )
    assert [node["id"] for node in graph["nodes"]] == ["load", "check", "notify", "credit"]
    assert {node["status"] for node in graph["nodes"]} == {"draft"}
    assert [edge["id"] for edge in graph["edges"]] == [
        "load:ok:check",
        "check:ok:credit:condition:0",
        "check:ok:notify",
        "check:error:credit",
        "notify:ok:complete",
        "credit:ok:complete",
    ]
    assert graph["edges"][3] == {
        "id": "check:error:credit",
        "from": "check",
        "to": "credit",
        "type": "transition",
        "status": "pending",
        "selected?": False,
        "skipped?": False,
        "pending?": True,
        "blocked?": False,
        "outcome": "error",
        "condition": None,
        "recovery": "compensation",
    }
    assert json.loads(json.dumps(graph)) == graph


def test_preview_graph_with_plain_keys_drops_only_the_flags_question_marks() -> None:
    spec_keys = EditorSpec.preview_graph(transition_spec())

    plain = EditorSpec.preview_graph(transition_spec(), plain_keys=True)

    assert plain["terminal"] is False and "terminal?" not in plain
    assert plain["nodes"][0]["current"] is False and plain["nodes"][0]["dynamic"] is False
    edge = plain["edges"][0]
    assert (edge["selected"], edge["skipped"], edge["pending"], edge["blocked"]) == (
        False,
        False,
        True,
        False,
    )
    assert [e["id"] for e in plain["edges"]] == [e["id"] for e in spec_keys["edges"]]
    assert all(not key.endswith("?") for key in (*plain, *edge, *plain["nodes"][0]))


def test_preview_graph_of_a_dependency_workflow() -> None:
    graph = EditorSpec.preview_graph(dependency_spec())

    assert [(e["id"], e["type"], e["outcome"]) for e in graph["edges"]] == [
        ("account:dependency:prepare", "dependency", None),
        ("invoice:dependency:prepare", "dependency", None),
    ]


def test_preview_graph_shows_action_keys() -> None:
    data = changed(
        transition_spec(), lambda d: d["steps"][0].update(ref=None, action="billing.load")
    )

    assert EditorSpec.preview_graph(data)["nodes"][0]["action"] == "billing.load"


def test_preview_of_an_invalid_map_is_refused() -> None:
    with pytest.raises(WorkflowValidationError):
        EditorSpec.preview_graph({**transition_spec(), "status": "running"})


def test_diff_reports_added_removed_and_changed() -> None:
    source = WorkflowSpec.from_dict(transition_spec())

    def edit(data: dict[str, Any]) -> None:
        data["version"] = "v2"
        data["steps"][1]["retry"] = {"max_attempts": 3}
        data["steps"][3]["name"] = "refund"
        data["transitions"][2]["to"] = "refund"
        data["transitions"][4]["from"] = "refund"

    diff = EditorSpec.diff(source, changed(transition_spec(), edit))

    assert diff == {
        "added": {"nodes": ["refund"], "edges": ["check:error:refund", "refund:ok:complete"]},
        "removed": {"nodes": ["credit"], "edges": ["check:error:credit", "credit:ok:complete"]},
        "changed": {"nodes": ["check"], "edges": [], "fields": ["version"]},
    }


def test_diff_of_identical_specs_is_empty() -> None:
    diff = EditorSpec.diff(WorkflowSpec.from_dict(transition_spec()), transition_spec())

    assert diff == {
        "added": {"nodes": [], "edges": []},
        "removed": {"nodes": [], "edges": []},
        "changed": {"nodes": [], "edges": [], "fields": []},
    }


def test_diff_sees_a_condition_value_change_from_true_to_one() -> None:
    def condition(value: object) -> dict[str, Any]:
        return changed(
            transition_spec(),
            lambda d: d["transitions"][0].update(condition={"path": ["a"], "equals": value}),
        )

    diff = EditorSpec.diff(condition(True), condition(1))

    assert diff["changed"] == {"nodes": [], "edges": ["load:ok:check:condition:0"], "fields": []}
