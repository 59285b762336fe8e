"""Signals as JSON: the round trip, delivery to a runtime that only knows the workflow's name,
and the typed refusal of every malformed field."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    InvalidArgument,
    InvalidRunId,
    InvalidSignal,
    SquidMeshError,
    WorkflowNotRegistered,
)
from squidmesh_es.runtime import Signal, SignalType

from conftest import OpenMesh
from engine_workflows import CALLS, Approved, Sequential

RUN_ID = UUID("0b5f1c1e-8a51-4f4e-9d7e-3f1f2f6a9a10")
AT = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))
ORDER = {"order_id": "o7", "amount": 12}


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def written(mesh: SquidMesh) -> int:
    return mesh.recorder.max_notification_id() or 0


EVERY_TYPE = {
    "start_run": Signal.start_run(
        Sequential,
        {"order_id": "o1", "amount": 7, "tags": ["a", 1.5, None, {"deep": True}]},
        trigger="place",
        run_id=RUN_ID,
        metadata={"source": "broker", "attempt": 2},
        occurred_at=AT,
        idempotency_key="msg-1",
    ),
    "start_cron": Signal.start_cron(
        "cron_tests.daily_digest",
        "nightly",
        signal_id="tick-9",
        intended_window={
            "start_at": datetime(2026, 3, 1, 20, tzinfo=UTC),
            "end_at": "2026-03-02T20:00:00Z",
        },
        occurred_at=AT,
    ),
    "approve_run": Signal.approve_run(RUN_ID, actor="ana", comment="ok", metadata={"t": "T-1"}),
    "reject_run": Signal.reject_run(str(RUN_ID), actor="bo", idempotency_key="T-2:reject"),
    "resume_run": Signal.resume_run(RUN_ID, occurred_at=AT),
    "cancel_run": Signal.cancel_run(RUN_ID, comment="duplicate", metadata={"n": [1, 2]}),
    "replay_run": Signal.replay_run(RUN_ID, allow_irreversible=True, actor="ops"),
}


def test_every_signal_type_has_a_case() -> None:
    assert set(EVERY_TYPE) == {t.value for t in SignalType}


@pytest.mark.parametrize("kind", sorted(EVERY_TYPE))
def test_every_signal_type_round_trips_through_json(kind: str) -> None:
    signal = EVERY_TYPE[kind]

    text = signal.model_dump_json()
    back = Signal.model_validate_json(text)

    assert back == signal
    assert back.kind == kind
    assert back.model_dump_json() == text
    assert Signal.model_validate(json.loads(text)) == signal  # a host that parses first


def test_the_workflow_travels_by_name_and_its_class_stays_behind() -> None:
    signal = EVERY_TYPE["start_run"]

    data = json.loads(signal.model_dump_json())

    assert data["workflow"] == Sequential.name
    assert data["run_id"] == str(RUN_ID)
    assert datetime.fromisoformat(data["occurred_at"]) == AT
    assert set(data) == set(Signal.model_fields)  # nothing private is written


def test_window_bounds_given_as_datetimes_are_carried_as_iso_text() -> None:
    window = EVERY_TYPE["start_cron"].intended_window

    assert window == {"start_at": "2026-03-01T20:00:00+00:00", "end_at": "2026-03-02T20:00:00Z"}


def test_a_signal_read_from_json_starts_on_a_fresh_runtime_that_registered_the_workflow(
    open_mesh: OpenMesh,
) -> None:
    text = Signal.start_run(Approved, ORDER, idempotency_key="order-o7").model_dump_json()
    consumer = open_mesh(workflows=[Approved])

    started = consumer.apply_signal(Signal.model_validate_json(text))
    consumer.drain(owner_id="w")

    assert started.workflow == Approved.name
    assert consumer.inspect_run(started.run_id).status == "paused"
    [receipt] = consumer.inspect_run(started.run_id, include_history=True).command_history
    assert (receipt.signal_type, receipt.idempotency_key) == ("start_run", "order-o7")


@pytest.mark.shared_journal
def test_a_redelivered_json_signal_is_one_command_across_runtimes(open_mesh: OpenMesh) -> None:
    start = Signal.start_run(Approved, ORDER, idempotency_key="order-o7").model_dump_json()
    first = open_mesh(workflows=[Approved])
    started = first.apply_signal(Signal.model_validate_json(start))
    first.drain(owner_id="w")
    approve = Signal.approve_run(
        started.run_id, actor="ana", metadata={"api_token": "tok-1"}, idempotency_key="T-7"
    ).model_dump_json()
    second = open_mesh(workflows=[Approved])  # another process reading the same broker
    approved = second.apply_signal(Signal.model_validate_json(approve))
    before = written(second)

    again = open_mesh(workflows=[Approved])
    restarted = again.apply_signal(Signal.model_validate_json(start))
    reapproved = again.apply_signal(Signal.model_validate_json(approve))

    assert restarted.run_id == reapproved.run_id == approved.run_id == started.run_id
    assert written(again) == before
    history = again.inspect_run(started.run_id, include_history=True).command_history
    assert [(c.signal_type, c.idempotency_key) for c in history] == [
        ("start_run", "order-o7"),
        ("approve_run", "T-7"),
    ]
    assert history[1].metadata == {"api_token": "[REDACTED]"}


def test_a_signal_built_from_the_class_needs_no_registration(mesh: SquidMesh) -> None:
    assert Sequential.name not in mesh.workflows

    started = mesh.apply_signal(Signal.start_run(Sequential, ORDER))

    assert started.workflow == Sequential.name
    assert Sequential.name in mesh.workflows  # registered by the start, as mesh.start does


@pytest.mark.parametrize(
    "signal",
    [
        Signal.model_validate_json(Signal.start_run(Sequential, ORDER).model_dump_json()),
        Signal.start_run(Sequential.name, ORDER),
        Signal(SignalType.START_RUN, workflow="NoSuchWorkflow"),
    ],
    ids=["read-from-json", "built-by-name", "unknown-name"],
)
def test_a_start_naming_an_unregistered_workflow_is_refused_and_writes_nothing(
    mesh: SquidMesh, signal: Signal
) -> None:
    before = written(mesh)

    with pytest.raises(WorkflowNotRegistered) as refused:
        mesh.apply_signal(signal)

    assert refused.value.code == "invalid_workflow"
    assert refused.value.workflow == signal.workflow
    assert isinstance(refused.value, InvalidArgument) and refused.value.option == "workflow"
    assert refused.value.to_dict()["details"]["workflow"] == signal.workflow
    assert written(mesh) == before


def test_registering_the_workflow_lets_the_same_signal_through(mesh: SquidMesh) -> None:
    signal = Signal.model_validate_json(Signal.start_run(Sequential, ORDER).model_dump_json())
    with pytest.raises(WorkflowNotRegistered):
        mesh.apply_signal(signal)

    mesh.register(Sequential)

    assert mesh.apply_signal(signal).workflow == Sequential.name


SECRET = "tok-do-not-log"


@pytest.mark.parametrize(
    ("fields", "path", "code"),
    [
        ({"occurred_at": datetime(2026, 3, 2, 9, 30)}, ("occurred_at",), "timezone_aware"),
        ({"occurred_at": "yesterday"}, ("occurred_at",), "datetime_from_date_parsing"),
        ({"metadata": {"token": SECRET, "at": datetime.now(UTC)}}, ("metadata",), "json_value"),
        ({"metadata": {"token": SECRET, "pair": (1, 2)}}, ("metadata",), "json_value"),
        ({"metadata": {1: SECRET}}, ("metadata",), "json_value"),
        ({"metadata": SECRET}, ("metadata",), "dict_type"),
        ({"payload": {"amount": math.nan}}, ("payload",), "json_value"),
        ({"payload": {"tags": {"a"}}}, ("payload",), "json_value"),
        ({"actor": 42}, ("actor",), "string_type"),
        ({"comment": b"bytes"}, ("comment",), "string_type"),
        ({"idempotency_key": "   "}, ("idempotency_key",), "blank_string"),
        ({"idempotency_key": 7}, ("idempotency_key",), "string_type"),
        ({"workflow": int}, ("workflow",), "string_type"),
        ({"allow_irreversible": "yes"}, ("allow_irreversible",), "bool_type"),
        ({"kind": "launch_run"}, ("kind",), "enum"),
        ({"reason": "typo"}, ("reason",), "extra_forbidden"),
    ],
)
def test_a_malformed_field_is_refused_with_its_code_when_built(
    fields: dict[str, object], path: tuple[str, ...], code: str
) -> None:
    fields.setdefault("kind", SignalType.CANCEL_RUN)

    with pytest.raises(InvalidSignal) as refused:
        Signal(**fields)

    assert [(i.path, i.code) for i in refused.value.issues] == [(path, code)]
    assert refused.value.code == "invalid_signal"
    assert refused.value.to_dict()["details"]["issues"][0]["code"] == code
    assert_no_library_error_or_value_leaks(refused.value)


@pytest.mark.parametrize(
    ("text", "path", "code"),
    [
        ("not json", (), "json_invalid"),
        ("[1, 2]", (), "model_type"),
        ("{}", ("kind",), "missing"),
        (
            '{"kind": "cancel_run", "occurred_at": "2026-03-02T09:30:00"}',
            ("occurred_at",),
            "timezone_aware",
        ),
        ('{"kind": "start_run", "payload": {"amount": NaN}}', ("payload",), "json_value"),
        ('{"kind": "start_run", "payload": []}', ("payload",), "dict_type"),
        ('{"kind": "approve_run", "actor": ["ana"]}', ("actor",), "string_type"),
        ('{"kind": "approve_run", "idempotency_key": ""}', ("idempotency_key",), "blank_string"),
        ('{"kind": "replay_run", "allow_irreversible": 1}', ("allow_irreversible",), "bool_type"),
        ('{"kind": "approve_run", "token": "tok-do-not-log"}', ("token",), "extra_forbidden"),
    ],
)
def test_a_malformed_field_is_refused_with_its_code_when_read_from_json(
    text: str, path: tuple[str, ...], code: str
) -> None:
    with pytest.raises(InvalidSignal) as refused:
        Signal.model_validate_json(text)

    assert [(i.path, i.code) for i in refused.value.issues] == [(path, code)]
    assert_no_library_error_or_value_leaks(refused.value)


def test_every_malformed_field_is_listed_in_one_refusal() -> None:
    text = '{"kind": "approve_run", "actor": 1, "comment": 2, "occurred_at": "2026-03-02T09:30:00"}'

    with pytest.raises(InvalidSignal) as refused:
        Signal.model_validate_json(text)

    assert refused.value.codes == {"string_type", "timezone_aware"}
    assert [i.path for i in refused.value.issues] == [("actor",), ("comment",), ("occurred_at",)]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Signal.approve_run("not-a-uuid"),
        lambda: Signal.start_run(Sequential, ORDER, run_id="42"),
        lambda: Signal(SignalType.CANCEL_RUN, run_id=42),
        lambda: Signal.model_validate_json('{"kind": "cancel_run", "run_id": "nope"}'),
        lambda: Signal.model_validate({"kind": "cancel_run", "run_id": "nope", "actor": 5}),
    ],
    ids=["control", "start", "not-a-string", "json", "with-other-issues"],
)
def test_a_malformed_run_id_is_invalid_run_id_however_the_signal_is_made(
    build: Callable[[], Signal],
) -> None:
    with pytest.raises(InvalidRunId) as refused:
        build()

    assert refused.value.code == "invalid_run_id"
    assert_no_library_error_or_value_leaks(refused.value)


def test_a_malformed_control_changes_nothing_through_the_methods_either(mesh: SquidMesh) -> None:
    run_id = mesh.start(Approved, ORDER).run_id
    mesh.drain(owner_id="w")
    before = written(mesh)

    with pytest.raises(InvalidSignal) as refused:
        mesh.approve(run_id, metadata={"when": datetime.now(UTC)})
    with pytest.raises(InvalidSignal):
        mesh.cancel(run_id, idempotency_key=" ")
    with pytest.raises(InvalidSignal):
        mesh.replay(run_id, idempotency_key="")

    assert refused.value.codes == {"json_value"}
    assert written(mesh) == before
    assert mesh.inspect_run(run_id).status == "paused"


def test_a_field_its_type_does_not_take_is_still_refused_when_read_from_json(
    mesh: SquidMesh,
) -> None:
    text = json.dumps({"kind": "cancel_run", "run_id": str(uuid4()), "signal_id": "s-1"})
    signal = Signal.model_validate_json(text)  # every field is well formed

    with pytest.raises(InvalidArgument) as refused:
        mesh.apply_signal(signal)

    assert refused.value.reason == "cancel_run does not take ['signal_id']"


def test_a_signal_is_a_value_that_cannot_be_changed() -> None:
    signal = EVERY_TYPE["approve_run"]

    with pytest.raises(FrozenInstanceError):
        signal.actor = "mallory"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del signal.actor

    assert signal.actor == "ana"


def test_the_kind_cannot_be_given_twice() -> None:
    with pytest.raises(TypeError):
        Signal(SignalType.CANCEL_RUN, kind=SignalType.APPROVE_RUN)


def assert_no_library_error_or_value_leaks(error: SquidMeshError) -> None:
    assert not isinstance(error, ValidationError)
    assert error.__cause__ is None and error.__suppress_context__
    assert SECRET not in str(error) and SECRET not in json.dumps(error.to_dict())
