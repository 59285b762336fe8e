"""Declaring workflows as classes: names, order, options, and validation at definition."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

from squidmesh_es.errors import UnknownStep, WorkflowValidationError
from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    CronIdempotency,
    Deadline,
    Escalation,
    LogLevel,
    Ok,
    Outcome,
    Recovery,
    RetryPolicy,
    Step,
    StepContext,
    StepKind,
    Workflow,
    WorkflowMode,
    approval,
    cron,
    equals,
    log,
    manual,
    pause,
    step,
    transition,
    wait,
)


class Load(Step):
    def run(self, input: dict[str, object], ctx: StepContext) -> Ok:
        return Ok({"loaded": True})


class Undo(Step):
    def run(self, input: dict[str, object], ctx: StepContext) -> Ok:
        return Ok()


class Request(BaseModel):
    account_id: str


class Pipeline(Workflow):
    version = "2026-05-26.pipeline"
    payload = Request
    triggers = [
        manual("start"),
        cron("nightly", "0 21 * * *", idempotency=CronIdempotency.SKIP_DUPLICATE),
    ]

    load = step(
        Load,
        input={"account": "account_id"},
        output="loaded",
        retry=RetryPolicy(3, Backoff.fixed(timedelta(seconds=2))),
        compensate=Undo,
        deadline=Deadline(timedelta(minutes=5), timedelta(minutes=1), Escalation.OPERATOR_ACTION),
    )
    settle = wait(timedelta(seconds=5))
    note = log("settled", level=LogLevel.WARNING)
    hold = pause()
    review = approval(output="approval")
    finish = step(Load, irreversible=True)

    transitions = [
        transition(load, to=settle),
        transition(settle, to=note),
        transition(note, to=hold),
        transition(hold, to=review),
        transition(review, to=finish),
        transition(review, on=Outcome.ERROR, to=COMPLETE, recovery=Recovery.UNDO),
        transition(finish, to=COMPLETE, when=equals("loaded.loaded", True)),
        transition(finish, to=COMPLETE),
    ]


def test_attribute_names_become_step_names_in_declaration_order() -> None:
    assert Pipeline.to_spec().step_names == ("load", "settle", "note", "hold", "review", "finish")


def test_declarations_know_their_names() -> None:
    assert Pipeline.load.name == "load"


def test_workflow_name_defaults_to_the_qualified_class_name() -> None:
    assert Pipeline.name == "Pipeline"
    assert Pipeline.to_spec().workflow == "Pipeline"


def test_explicit_name_and_version_are_kept() -> None:
    class Renamed(Workflow):
        name = "billing.renamed"
        version = "v7"
        triggers = [manual("go")]
        only = step(Load)

    assert (Renamed.to_spec().workflow, Renamed.to_spec().version) == ("billing.renamed", "v7")


def test_step_options_reach_the_spec() -> None:
    load = Pipeline.to_spec().step("load")

    assert load.kind is StepKind.CUSTOM
    assert load.ref == f"{__name__}:Load"
    assert [(b.key, b.path) for b in load.input or ()] == [("account", ("account_id",))]
    assert load.output == "loaded"
    assert load.retry == RetryPolicy(3, Backoff.fixed(timedelta(seconds=2)))
    assert load.compensate is not None and load.compensate.ref == f"{__name__}:Undo"
    assert load.deadline == Deadline(
        timedelta(minutes=5), timedelta(minutes=1), Escalation.OPERATOR_ACTION
    )


def test_built_in_steps_reach_the_spec() -> None:
    spec = Pipeline.to_spec()

    assert spec.step("settle").duration == timedelta(seconds=5)
    assert (spec.step("note").message, spec.step("note").level) == ("settled", LogLevel.WARNING)
    assert spec.step("hold").kind is StepKind.PAUSE
    assert (spec.step("review").kind, spec.step("review").output) == (StepKind.APPROVAL, "approval")


def test_irreversible_implies_not_compensatable() -> None:
    finish = Pipeline.to_spec().step("finish")

    assert (finish.irreversible, finish.compensatable, finish.requires_replay_review) == (
        True,
        False,
        True,
    )


def test_triggers_reach_the_spec() -> None:
    nightly = Pipeline.to_spec().trigger("nightly")

    assert (nightly.expression, nightly.timezone, nightly.idempotency) == (
        "0 21 * * *",
        "Etc/UTC",
        CronIdempotency.SKIP_DUPLICATE,
    )


def test_transitions_reach_the_spec_in_declaration_order() -> None:
    routes = [(t.from_step, t.on, t.to) for t in Pipeline.to_spec().transitions]

    assert routes[4:6] == [
        ("review", Outcome.OK, "finish"),
        ("review", Outcome.ERROR, "complete"),
    ]


def test_step_and_compensation_classes_come_from_the_declaration() -> None:
    assert Pipeline.step_class("load") is Load
    assert Pipeline.compensation_class("load") is Undo
    assert Pipeline.compensation_class("finish") is None


def test_built_in_steps_have_no_step_class() -> None:
    with pytest.raises(UnknownStep):
        Pipeline.step_class("settle")


def test_dependency_declarations_make_a_dependency_workflow() -> None:
    class Joins(Workflow):
        triggers = [manual("go")]
        left = step(Load)
        right = step(Load)
        join = step(Load, after=[left, right])

    spec = Joins.to_spec()

    assert spec.mode is WorkflowMode.DEPENDENCY
    assert spec.step("join").after == ("left", "right")


def test_invalid_workflow_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class Broken(Workflow):
            triggers = [manual("go")]
            check = step(Load, retry=RetryPolicy(max_attempts=0))

    assert "Broken' is invalid" in str(caught.value)
    assert "max_attempts counts every attempt" in str(caught.value)
    assert caught.value.codes == {"invalid_step_retry_max_attempts"}


def test_every_problem_of_a_class_is_reported_together() -> None:
    class BadDefault(BaseModel):
        count: int = "seven"  # type: ignore[assignment]

    with pytest.raises(WorkflowValidationError) as caught:

        class Broken(Workflow):
            payload = BadDefault
            triggers = [manual("go"), cron("nightly", "sometimes")]
            gate = pause()
            join = step(Load, after=[gate])

    assert {(i.path, i.code) for i in caught.value.issues} == {
        (("payload", 0, "default"), "invalid_payload_default"),
        (("triggers", 1, "expression"), "invalid_cron_expression"),
        (("steps", 0, "kind"), "manual_step_in_dependency_workflow"),
    }


def test_route_to_a_step_of_another_workflow_is_refused() -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class Borrower(Workflow):
            triggers = [manual("go")]
            mine = step(Load)
            transitions = [transition(mine, to=Pipeline.finish)]

    assert caught.value.codes == {"unknown_transition_target"}


def test_step_bound_to_a_reserved_attribute_is_refused() -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class Clash(Workflow):
            triggers = [manual("go")]
            version = step(Load)  # type: ignore[assignment]

    assert (("steps", 0, "name"), "invalid_step_name") in {
        (i.path, i.code) for i in caught.value.issues
    }


def test_one_declaration_under_two_names_is_refused() -> None:
    shared = step(Load)

    with pytest.raises(WorkflowValidationError) as caught:

        class Twice(Workflow):
            triggers = [manual("go")]
            first = shared
            second = shared

    assert (("steps", 1), "invalid_step") in {(i.path, i.code) for i in caught.value.issues}


def test_payload_that_is_not_a_model_is_refused() -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class NoModel(Workflow):
            payload = dict  # type: ignore[assignment]
            triggers = [manual("go")]
            only = step(Load)

    assert caught.value.codes == {"invalid_payload_contract"}


def test_triggers_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class OneTrigger(Workflow):
            triggers = manual("go")  # type: ignore[assignment]
            only = step(Load)

    assert caught.value.codes == {"invalid_collection"}


def test_abstract_base_is_not_validated_and_has_no_spec() -> None:
    class Base(Workflow, abstract=True):
        triggers = [manual("go")]

    class Concrete(Base):
        only = step(Load)

    with pytest.raises(TypeError):
        Base.to_spec()
    assert Concrete.to_spec().step_names == ("only",)


def test_subclass_inherits_steps_and_can_replace_one_in_place() -> None:
    class Parent(Workflow):
        triggers = [manual("go")]
        first = step(Load)
        second = step(Load)
        transitions = [transition(first, to=second), transition(second, to=COMPLETE)]

    class Child(Parent):
        second = step(Undo)
        transitions = [transition(Parent.first, to=second), transition(second, to=COMPLETE)]

    spec = Child.to_spec()

    assert spec.step_names == ("first", "second")
    assert spec.step("second").ref == f"{__name__}:Undo"
    assert spec.workflow.endswith("Child")


@pytest.mark.parametrize(
    "declare",
    [
        lambda: step("billing.Load"),  # type: ignore[arg-type]
        lambda: step(Load, compensate=object),  # type: ignore[arg-type]
        lambda: step(Load, retry=3),  # type: ignore[arg-type]
        lambda: step(Load, after=["load"]),  # type: ignore[list-item]
        lambda: step(Load, input="account_id"),
        lambda: step(Load, input={"account": 5}),  # type: ignore[dict-item]
        lambda: wait(5000),  # type: ignore[arg-type]
        lambda: log("hi", level="loud"),  # type: ignore[arg-type]
        lambda: transition("load", to=COMPLETE),  # type: ignore[arg-type]
        lambda: transition(step(Load), to="finish"),  # type: ignore[arg-type]
        lambda: cron("nightly", "@daily", idempotency="always"),  # type: ignore[arg-type]
        lambda: Deadline(30_000),  # type: ignore[arg-type]
        lambda: RetryPolicy("3"),  # type: ignore[arg-type]
    ],
)
def test_wrong_python_types_fail_where_they_are_written(declare: object) -> None:
    with pytest.raises(TypeError):
        declare()  # type: ignore[operator]


def test_payload_contract_problems_do_not_hide_step_problems() -> None:
    class Ambiguous(BaseModel):
        value: int | str

    with pytest.raises(WorkflowValidationError) as caught:

        class Both(Workflow):
            payload = Ambiguous
            triggers = [manual("go")]
            check = step(Load, retry=RetryPolicy(max_attempts=0))

    assert caught.value.codes == {"invalid_payload_field_type", "invalid_step_retry_max_attempts"}


@pytest.mark.parametrize(
    ("expression", "timezone", "field", "code"),
    [
        ("61 * * * *", "Etc/UTC", "expression", "invalid_cron_expression"),
        ("0 25 * * *", "Etc/UTC", "expression", "invalid_cron_expression"),
        ("0 9 * * *", "Mars/Olympus", "timezone", "invalid_cron_timezone"),
        ("0 9 * * *", "../../etc/passwd", "timezone", "invalid_cron_timezone"),
    ],
)
def test_a_cron_trigger_the_scheduler_could_not_read_is_refused_at_definition(
    expression: str, timezone: str, field: str, code: str
) -> None:
    with pytest.raises(WorkflowValidationError) as caught:

        class Nightly(Workflow):
            triggers = [cron("nightly", expression, timezone=timezone)]
            load = step(Load)

    assert {(i.path, i.code) for i in caught.value.issues} == {(("triggers", 0, field), code)}
    assert repr(expression if field == "expression" else timezone) in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("*/15 * * * *", "Etc/UTC"),
        ("0 9 * * MON-FRI", "Europe/Berlin"),
        ("30 2 1 * *", "America/New_York"),
        ("@reboot", "Etc/UTC"),
    ],
)
def test_cron_triggers_the_scheduler_reads_are_accepted(expression: str, timezone: str) -> None:
    class Nightly(Workflow):
        triggers = [cron("nightly", expression, timezone=timezone)]
        load = step(Load)

    assert Nightly.to_spec().triggers[0].expression == expression
