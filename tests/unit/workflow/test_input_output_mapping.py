"""What a step reads from the run state and where its output lands."""

from __future__ import annotations

import pytest

from squidmesh_es.errors import MissingInputPath
from squidmesh_es.workflow import InputBinding, StepKind, StepSpec, run_state

STATE = {"account": {"id": "acct_1", "tier": "gold"}, "invoice_id": "inv_9", "note": None}


def _step(**options: object) -> StepSpec:
    return StepSpec("prepare", StepKind.CUSTOM, ref="m:Prepare", **options)  # type: ignore[arg-type]


def test_without_input_mapping_the_step_sees_the_whole_state() -> None:
    assert _step().select_input(STATE) == STATE


def test_selected_names_are_taken_from_the_top_level() -> None:
    step = _step(
        input=(InputBinding("invoice_id", ("invoice_id",)), InputBinding("note", ("note",)))
    )

    assert step.select_input(STATE) == {"invoice_id": "inv_9", "note": None}


def test_nested_paths_are_renamed() -> None:
    step = _step(
        input=(
            InputBinding("account_id", ("account", "id")),
            InputBinding("tier", ("account", "tier")),
        )
    )

    assert step.select_input(STATE) == {"account_id": "acct_1", "tier": "gold"}


@pytest.mark.parametrize(
    ("path", "missing_at"),
    [
        (("account", "region"), ("account", "region")),
        (("invoice", "id"), ("invoice",)),
        (("invoice_id", "x"), ("invoice_id", "x")),
    ],
)
def test_missing_path_is_a_typed_error_before_the_step_runs(
    path: tuple[str, ...], missing_at: tuple[str, ...]
) -> None:
    step = _step(input=(InputBinding("value", path),))

    with pytest.raises(MissingInputPath) as caught:
        step.select_input(STATE)

    assert caught.value.code == "missing_input_path"
    assert (caught.value.step, caught.value.key, caught.value.path, caught.value.missing_at) == (
        "prepare",
        "value",
        path,
        missing_at,
    )


def test_missing_input_error_names_paths_but_no_values() -> None:
    step = _step(input=(InputBinding("tier", ("account", "region")),))

    with pytest.raises(MissingInputPath) as caught:
        step.select_input(STATE)

    assert "acct_1" not in str(caught.value) and "account.region" in str(caught.value)


def test_output_without_key_merges_into_the_context() -> None:
    assert _step().place_output({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}


def test_output_key_namespaces_the_output() -> None:
    step = _step(output="delivery")

    assert step.place_output({"delivery": {"old": True}, "a": 1}, {"id": "d1"}) == {
        "delivery": {"id": "d1"},
        "a": 1,
    }


def test_placing_output_leaves_the_old_context_alone() -> None:
    context = {"a": 1}

    _step().place_output(context, {"a": 2})

    assert context == {"a": 1}


def test_run_state_is_the_payload_overlaid_by_the_context() -> None:
    assert run_state({"a": 1, "b": 1}, {"b": 2}) == {"a": 1, "b": 2}
