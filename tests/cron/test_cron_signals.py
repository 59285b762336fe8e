"""Signal.start_cron: the start_cron path as a command envelope, and the caller's key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from cron_workflows import DailyDigest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    InvalidArgument,
    InvalidScheduleIdentity,
    InvalidScheduleIntendedWindow,
    InvalidScheduleSignalId,
    MissingScheduleIdempotencyKey,
    SquidMeshError,
    WorkflowNotRegistered,
)
from squidmesh_es.runtime import CronDecision, Signal, SignalType
from squidmesh_es.runtime._cron import derive_signal_id, schedule_run_id

from conftest import OpenMesh

NOW = datetime(2026, 3, 1, 20, 0, 5, tzinfo=UTC)
WINDOW = {"start_at": "2026-03-01T20:00:00Z", "end_at": "2026-03-02T20:00:00Z"}
SIGNAL_ID = derive_signal_id(DailyDigest.name, "nightly", *WINDOW.values())


def written(mesh: SquidMesh) -> int:
    return mesh.recorder.max_notification_id() or 0


def nightly(**options: object) -> Signal:
    options.setdefault("occurred_at", NOW)
    return Signal.start_cron(DailyDigest, "nightly", **options)  # type: ignore[arg-type]


def test_a_start_cron_signal_starts_the_run_start_cron_would(mesh: SquidMesh) -> None:
    snapshot = mesh.apply_signal(nightly(intended_window=WINDOW, metadata={"host": "k8s"}))

    assert snapshot.run_id == str(schedule_run_id(DailyDigest.name, "nightly", SIGNAL_ID))
    schedule = snapshot.context["schedule"]
    assert (schedule["signal_id"], schedule["idempotency_key"]) == (SIGNAL_ID, SIGNAL_ID)
    assert schedule["received_at"] == "2026-03-01T20:00:05Z"  # the signal's occurred_at
    assert snapshot.input == {"channel": "ops"}
    [receipt] = mesh.inspect_run(snapshot.run_id, include_history=True).command_history
    assert receipt.signal_type == "start_cron"
    assert receipt.idempotency_key == SIGNAL_ID
    assert receipt.occurred_at == NOW
    assert receipt.metadata == {"host": "k8s"}
    assert receipt.payload is not None and receipt.payload["signal_id"] == SIGNAL_ID


def test_a_repeated_signal_returns_the_first_run_without_a_second_receipt(
    mesh: SquidMesh,
) -> None:
    first = mesh.apply_signal(nightly(intended_window=WINDOW))
    before = written(mesh)

    again = mesh.apply_signal(
        nightly(intended_window=WINDOW, occurred_at=NOW + timedelta(minutes=5))
    )

    assert again.run_id == first.run_id
    assert len(again.command_history) == 1
    assert again.context["schedule"]["received_at"] == "2026-03-01T20:00:05Z"
    assert written(mesh) == before


def test_a_skipped_duplicate_returns_the_snapshot_of_the_first_run(mesh: SquidMesh) -> None:
    signal = Signal.start_cron(DailyDigest, "quarterly_hour", signal_id="q-7", occurred_at=NOW)
    first = mesh.apply_signal(signal)
    before = written(mesh)

    again = mesh.apply_signal(signal)

    assert again.run_id == first.run_id
    assert written(mesh) == before
    skipped = mesh.start_cron(DailyDigest, "quarterly_hour", signal_id="q-7", now=NOW)
    assert skipped.decision is CronDecision.SKIPPED  # start_cron tells which it was


def test_the_caller_key_is_the_duplicate_key_and_another_key_a_distinct_run(
    mesh: SquidMesh,
) -> None:
    first = mesh.apply_signal(nightly(intended_window=WINDOW, idempotency_key="k1"))
    before = written(mesh)
    again = mesh.apply_signal(nightly(intended_window=WINDOW, idempotency_key="k1"))
    assert written(mesh) == before

    other = mesh.apply_signal(nightly(intended_window=WINDOW, idempotency_key="k2"))

    assert again.run_id == first.run_id
    assert other.run_id != first.run_id
    assert first.run_id == str(schedule_run_id(DailyDigest.name, "nightly", "k1"))
    schedule = first.context["schedule"]
    assert (schedule["signal_id"], schedule["idempotency_key"]) == (SIGNAL_ID, "k1")
    assert [c.idempotency_key for c in first.command_history] == ["k1"]
    assert [c.idempotency_key for c in other.command_history] == ["k2"]


def test_a_caller_key_stands_in_for_a_missing_identity(mesh: SquidMesh) -> None:
    snapshot = mesh.apply_signal(nightly(idempotency_key="boot-2026-03-01"))

    assert snapshot.run_id == str(schedule_run_id(DailyDigest.name, "nightly", "boot-2026-03-01"))
    assert "signal_id" not in snapshot.context["schedule"]


def test_a_caller_key_makes_a_trigger_without_idempotency_start_once(mesh: SquidMesh) -> None:
    first = mesh.start_cron(DailyDigest, "hourly", idempotency_key="h-1", now=NOW)
    again = mesh.start_cron(DailyDigest, "hourly", idempotency_key="h-1", now=NOW)
    unkeyed = mesh.start_cron(DailyDigest, "hourly", now=NOW)

    assert first.decision is CronDecision.STARTED
    assert again.decision is CronDecision.RETURNED_EXISTING
    assert again.run_id == first.run_id
    assert unkeyed.run_id != first.run_id
    assert "idempotency" not in first.snapshot.context["schedule"]


@pytest.mark.parametrize(
    ("options", "error", "code"),
    [
        ({"signal_id": " padded "}, InvalidScheduleSignalId, "invalid_schedule_signal_id"),
        ({"signal_id": "x" * 501}, InvalidScheduleSignalId, "invalid_schedule_signal_id"),
        (
            {"intended_window": {"start_at": "soon", "end_at": WINDOW["end_at"]}},
            InvalidScheduleIntendedWindow,
            "invalid_schedule_intended_window",
        ),
        (
            {"intended_window": {"start_at": WINDOW["end_at"], "end_at": WINDOW["start_at"]}},
            InvalidScheduleIntendedWindow,
            "invalid_schedule_intended_window",
        ),
        ({"idempotency_key": ""}, InvalidScheduleIdentity, "invalid_schedule_identity"),
        ({"idempotency_key": "tab\tkey"}, InvalidScheduleIdentity, "invalid_schedule_identity"),
        ({}, MissingScheduleIdempotencyKey, "missing_schedule_idempotency_key"),
        (
            {"intended_window": {"start_at": WINDOW["start_at"]}},
            MissingScheduleIdempotencyKey,
            "missing_schedule_idempotency_key",
        ),
    ],
)
def test_a_bad_or_missing_identity_is_refused_with_its_code_and_writes_nothing(
    mesh: SquidMesh, options: dict[str, object], error: type[SquidMeshError], code: str
) -> None:
    before = written(mesh)

    with pytest.raises(error) as caught:
        mesh.apply_signal(nightly(**options))

    assert caught.value.code == code
    assert caught.value.to_dict()["code"] == code
    assert written(mesh) == before


def test_identity_errors_are_still_invalid_arguments(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mesh.apply_signal(nightly(signal_id=""))

    assert caught.value.to_dict() == {
        "code": "invalid_schedule_signal_id",
        "message": caught.value.message,
        "details": {"option": "signal_id", "reason": caught.value.reason},
    }


def test_a_hand_built_signal_with_fields_of_another_type_is_refused(mesh: SquidMesh) -> None:
    before = written(mesh)
    stray = Signal(
        SignalType.START_CRON,
        workflow=DailyDigest,
        trigger="nightly",
        signal_id="s-1",
        run_id=uuid4(),
        actor="ops",
    )

    with pytest.raises(InvalidArgument) as caught:
        mesh.apply_signal(stray)

    assert caught.value.reason == "start_cron does not take ['actor', 'run_id']"
    with pytest.raises(InvalidArgument):
        mesh.apply_signal(Signal(SignalType.START_CRON, workflow=DailyDigest))  # no trigger
    assert written(mesh) == before


def test_the_constructor_takes_no_unknown_attributes() -> None:
    with pytest.raises(TypeError):
        Signal.start_cron(DailyDigest, "nightly", actor="ops")  # type: ignore[call-arg]


def test_a_start_cron_signal_is_one_path_with_start_cron(mesh: SquidMesh) -> None:
    via_method = mesh.start_cron(DailyDigest, "nightly", signal_id="s-9", now=NOW)

    via_signal = mesh.apply_signal(nightly(signal_id="s-9"))

    assert via_signal.run_id == via_method.run_id
    assert UUID(via_signal.run_id).version == 5
    assert len(via_signal.command_history) == 1


def test_a_start_cron_signal_read_from_json_starts_once_where_the_workflow_is_registered(
    open_mesh: OpenMesh,
) -> None:
    text = nightly(intended_window=WINDOW).model_dump_json()  # as a host scheduler sends it
    first = open_mesh(workflows=[DailyDigest])
    started = first.apply_signal(Signal.model_validate_json(text))
    before = written(first)

    again = open_mesh(workflows=[DailyDigest]).apply_signal(Signal.model_validate_json(text))

    assert started.run_id == str(schedule_run_id(DailyDigest.name, "nightly", SIGNAL_ID))
    assert again.run_id == started.run_id
    assert written(first) == before
    assert started.context["schedule"]["received_at"] == "2026-03-01T20:00:05Z"


def test_a_start_cron_signal_for_an_unregistered_workflow_writes_nothing(mesh: SquidMesh) -> None:
    signal = Signal.model_validate_json(nightly(signal_id="s-1").model_dump_json())
    before = written(mesh)

    with pytest.raises(WorkflowNotRegistered) as refused:
        mesh.apply_signal(signal)

    assert (refused.value.code, refused.value.workflow) == ("invalid_workflow", DailyDigest.name)
    assert written(mesh) == before


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"signal_id": 5}, InvalidScheduleSignalId),
        ({"intended_window": {"start_at": 5, "end_at": "x"}}, InvalidScheduleIntendedWindow),
        ({"intended_window": ["2026-03-01"]}, InvalidScheduleIntendedWindow),
        ({"idempotency_key": " "}, InvalidScheduleIdentity),
        ({"idempotency_key": 5}, InvalidScheduleIdentity),
    ],
)
def test_a_malformed_schedule_field_is_refused_as_start_cron_refuses_it(
    options: dict[str, object], error: type[SquidMeshError]
) -> None:
    with pytest.raises(error) as built:
        nightly(**options)
    text = json.dumps({"kind": "start_cron", "workflow": "w", "trigger": "t", **options})
    with pytest.raises(error) as read:
        Signal.model_validate_json(text)

    assert built.value.code == read.value.code == error.code
    assert isinstance(built.value, InvalidArgument)
