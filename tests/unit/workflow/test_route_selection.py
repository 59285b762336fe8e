"""Choosing the route after a step: conditions, declaration order, fallback, edge ids."""

from __future__ import annotations

import pytest
from workflow_builders import changed, dependency_spec, transition_spec

from squidmesh_es.errors import UnknownStep
from squidmesh_es.workflow import (
    Condition,
    ConditionOperator,
    JSONValue,
    Outcome,
    Recovery,
    WorkflowSpec,
    equals,
    greater_than,
    less_than,
)


def _routed(*extra: dict[str, object]) -> WorkflowSpec:
    """The transition spec with extra routes from ``check`` declared before its fallback."""

    def add(data: dict[str, object]) -> None:
        transitions = data["transitions"]
        assert isinstance(transitions, list)
        transitions[1:1] = list(extra)

    return WorkflowSpec.from_dict(changed(transition_spec(), add))


RISKY = {
    "from": "check",
    "on": "ok",
    "to": "credit",
    "condition": {"path": ["risk", "score"], "greater_than": 70},
}
FLAGGED = {
    "from": "check",
    "on": "ok",
    "to": "complete",
    "condition": {"path": ["risk", "flag"], "equals": True},
}


def test_first_matching_condition_in_declaration_order_wins() -> None:
    spec = _routed(RISKY, FLAGGED)

    route = spec.select_route("check", Outcome.OK, {"risk": {"score": 90, "flag": True}})

    assert route is not None and route.to == "credit"


def test_later_condition_is_tried_when_earlier_ones_do_not_match() -> None:
    spec = _routed(RISKY, FLAGGED)

    route = spec.select_route("check", Outcome.OK, {"risk": {"score": 10, "flag": True}})

    assert route is not None and route.completes


def test_unconditional_route_is_the_fallback_wherever_it_is_declared() -> None:
    spec = _routed(RISKY)

    route = spec.select_route("check", Outcome.OK, {"risk": {"score": 10}})

    assert route is not None and route.to == "notify" and route.transition.condition is None


def test_no_route_for_an_outcome_gives_none() -> None:
    spec = WorkflowSpec.from_dict(transition_spec())

    assert spec.select_route("load", Outcome.ERROR, {}) is None


def test_no_matching_condition_and_no_fallback_gives_none() -> None:
    data = changed(
        transition_spec(),
        lambda d: d["transitions"][0].update(condition={"path": ["go"], "equals": "yes"}),
    )

    assert WorkflowSpec.from_dict(data).select_route("load", Outcome.OK, {"go": "no"}) is None


def test_error_route_carries_its_recovery_marker() -> None:
    route = WorkflowSpec.from_dict(transition_spec()).select_route("check", Outcome.ERROR, {})

    assert route is not None and (route.to, route.recovery) == ("credit", Recovery.COMPENSATION)


def test_route_of_an_unknown_step_is_an_error() -> None:
    with pytest.raises(UnknownStep):
        WorkflowSpec.from_dict(transition_spec()).select_route("ghost", Outcome.OK, {})


def test_conditional_edge_ids_count_within_the_step_and_outcome() -> None:
    spec = _routed(RISKY, FLAGGED)

    assert [edge.id for edge in spec.edges()[:4]] == [
        "load:ok:check",
        "check:ok:credit:condition:0",
        "check:ok:complete:condition:1",
        "check:ok:notify",
    ]


def test_selected_route_carries_its_edge_id_and_decision_data() -> None:
    route = _routed(RISKY, FLAGGED).select_route("check", Outcome.OK, {"risk": {"flag": True}})

    assert route is not None
    assert route.to_dict() == {**FLAGGED, "edge_id": "check:ok:complete:condition:1"}


@pytest.mark.parametrize(
    ("condition", "state", "expected"),
    [
        (equals("a.b", "x"), {"a": {"b": "x"}}, True),
        (equals("a.b", "x"), {"a": {"b": "y"}}, False),
        (equals("a", 1), {"a": 1.0}, True),
        (equals("a", True), {"a": 1}, False),
        (equals("a", 1), {"a": True}, False),
        (equals("a", None), {"a": None}, True),
        (equals("a", None), {}, False),
        (equals("a", [1, {"k": True}]), {"a": [1, {"k": True}]}, True),
        (equals("a", [1, {"k": True}]), {"a": [1, {"k": 1}]}, False),
        (greater_than("score", 70), {"score": 71}, True),
        (greater_than("score", 70), {"score": 70}, False),
        (greater_than("score", 70), {"score": "99"}, False),
        (greater_than("score", 0), {"score": True}, False),
        (less_than("score", 30), {"score": 29.5}, True),
        (less_than("score", 30), {"score": 30}, False),
        (less_than("score", 30), {}, False),
        (less_than("a.b", 30), {"a": 5}, False),
        (less_than(("a.b",), 30), {"a.b": 5}, True),
    ],
)
def test_condition_matching(
    condition: Condition, state: dict[str, JSONValue], expected: bool
) -> None:
    assert condition.matches(state) is expected


def test_condition_helpers_split_dotted_paths() -> None:
    assert equals("routing.decision", "auto") == Condition(
        ("routing", "decision"), ConditionOperator.EQUALS, "auto"
    )


def test_condition_spec_form_names_its_operator() -> None:
    assert less_than(["risk", "score"], 30).to_dict() == {
        "path": ["risk", "score"],
        "less_than": 30,
    }


@pytest.mark.parametrize(
    "spec",
    [_routed(RISKY, FLAGGED), WorkflowSpec.from_dict(dependency_spec())],
    ids=["transitions", "dependencies"],
)
def test_the_indexed_queries_answer_as_a_scan_of_the_declarations(spec: WorkflowSpec) -> None:
    # Routes and dependents are indexed once per spec; the answers stay the declared ones.
    for _ in range(2):
        for step in spec.steps:
            for outcome in Outcome:
                assert spec.transitions_from(step.name, outcome) == tuple(
                    t for t in spec.transitions if t.from_step == step.name and t.on == outcome
                )
            assert spec.dependents_of(step.name) == tuple(
                other.name for other in spec.steps if step.name in (other.after or ())
            )
    assert spec.transitions_from("ghost", Outcome.OK) == ()
    with pytest.raises(UnknownStep):
        spec.dependents_of("ghost")
