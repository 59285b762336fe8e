"""A step's stable identity: its name, or the ref it declares; never its class's module."""

from __future__ import annotations

import pytest

from squidmesh_es.errors import WorkflowValidationError
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Step,
    StepContext,
    StepSpec,
    Workflow,
    WorkflowSpec,
    manual,
    step,
    transition,
    validate_spec,
)


class Charge(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({})


class Refund(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({})


class Payments(Workflow):
    triggers = [manual("go")]
    take_payment = step(Charge, ref="payments.charge")
    refund = step(Refund)
    transitions = [transition(take_payment, to=refund), transition(refund, to=COMPLETE)]


def _custom(name: str, ref: str | None = None) -> StepSpec:
    return StepSpec(name=name, kind=Payments.to_spec().step("refund").kind, ref=ref)


def test_a_declared_ref_replaces_the_module_path_in_the_spec() -> None:
    spec = Payments.to_spec()

    assert spec.step("take_payment").ref == "payments.charge"
    assert spec.step("refund").ref == f"{__name__}:Refund"


def test_a_step_of_another_spec_is_found_by_its_declared_ref_whatever_its_name() -> None:
    assert Payments.implementation_of(_custom("charge", "payments.charge")) is Charge


def test_a_step_without_a_declared_ref_is_found_by_name_whatever_its_module() -> None:
    assert Payments.implementation_of(_custom("refund", "old.module:Refund")) is Refund


def test_a_step_this_code_does_not_declare_has_no_implementation() -> None:
    assert Payments.implementation_of(_custom("ship")) is None
    assert not Payments.has_step("ship")


def test_two_steps_declaring_one_ref_are_refused() -> None:
    data = Payments.to_spec().to_dict()
    data["steps"][1]["ref"] = "payments.charge"  # type: ignore[index]

    with pytest.raises(WorkflowValidationError) as raised:
        validate_spec(WorkflowSpec.from_dict(data))

    assert [issue.code for issue in raised.value.issues] == ["duplicate_step_ref"]


def test_a_ref_that_is_not_a_string_fails_where_it_is_written() -> None:
    with pytest.raises(TypeError):
        step(Charge, ref=1)  # type: ignore[arg-type]


def test_a_malformed_declared_ref_is_a_validation_error() -> None:
    with pytest.raises(WorkflowValidationError):

        class Bad(Workflow):
            triggers = [manual("go")]
            charge = step(Charge, ref="has space")
            transitions = [transition(charge, to=COMPLETE)]
