"""start_cron: schedule identity, metadata, duplicates and refusals, on every backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest
from cron_workflows import DailyDigest, RegionalReport

from squidmesh_es import SquidMesh
from squidmesh_es.errors import (
    InvalidArgument,
    InvalidScheduleIdentity,
    InvalidScheduleIntendedWindow,
    InvalidScheduleSignalId,
    InvalidTrigger,
    MissingScheduleIdempotencyKey,
    PayloadValidationError,
)
from squidmesh_es.runtime._cron import (
    CronDecision,
    CronStart,
    derive_signal_id,
    schedule_identity,
    schedule_run_id,
    start_cron,
)

from conftest import OpenMesh

NOW = datetime(2026, 3, 1, 20, 0, 5, tzinfo=UTC)
WINDOW = {"start_at": "2026-03-01T20:00:00Z", "end_at": "2026-03-02T20:00:00Z"}


def written(mesh: SquidMesh) -> int:
    return mesh.recorder.max_notification_id() or 0


# -- identity (no storage) --------------------------------------------------------------------


def test_derived_signal_id_is_sha256_of_length_prefixed_parts() -> None:
    import base64
    import hashlib

    parts = ["wf", "t", WINDOW["start_at"], WINDOW["end_at"]]
    digest = hashlib.sha256("|".join(f"{len(p)}:{p}" for p in parts).encode()).digest()
    expected = "sha256:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    assert derive_signal_id("wf", "t", WINDOW["start_at"], WINDOW["end_at"]) == expected


def test_schedule_run_id_is_a_deterministic_version_5_uuid() -> None:
    first = schedule_run_id("wf", "t", "sig-1")

    assert first == schedule_run_id("wf", "t", "sig-1")
    assert first.version == 5
    assert first != schedule_run_id("wf", "t", "sig-2")
    assert schedule_run_id("a|b", "c", "s") != schedule_run_id("a", "b|c", "s")


@pytest.mark.parametrize("parts", [("", "t", "s"), ("wf", "", "s"), ("wf", "t", "")])
def test_a_schedule_run_id_needs_every_part(parts: tuple[str, str, str]) -> None:
    with pytest.raises(InvalidScheduleIdentity) as caught:
        schedule_run_id(*parts)

    assert caught.value.code == "invalid_schedule_identity"


def test_the_same_window_written_with_another_offset_has_the_same_identity() -> None:
    berlin = timezone(timedelta(hours=1))
    utc = schedule_identity("wf", "t", intended_window=WINDOW)
    local = schedule_identity(
        "wf",
        "t",
        intended_window={
            "start_at": datetime(2026, 3, 1, 21, tzinfo=berlin),
            "end_at": "2026-03-02T21:00:00+01:00",
        },
    )

    assert local == utc
    assert utc.intended_window == WINDOW


def test_a_given_signal_id_wins_over_the_window() -> None:
    identity = schedule_identity("wf", "t", signal_id="tick-42", intended_window=WINDOW)

    assert identity.signal_id == "tick-42"


def test_an_incomplete_window_derives_no_signal_id() -> None:
    identity = schedule_identity("wf", "t", intended_window={"start_at": WINDOW["start_at"]})

    assert identity.signal_id is None


@pytest.mark.parametrize(
    "window",
    [
        {"start_at": "yesterday", "end_at": WINDOW["end_at"]},
        {"start_at": "2026-03-01T20:00:00", "end_at": WINDOW["end_at"]},  # no offset
        {"start_at": WINDOW["end_at"], "end_at": WINDOW["start_at"]},  # backwards
        {"start_at": 1, "end_at": 2},
    ],
)
def test_a_malformed_window_is_refused(window: dict[str, object]) -> None:
    with pytest.raises(InvalidScheduleIntendedWindow) as caught:
        schedule_identity("wf", "t", intended_window=window)  # type: ignore[arg-type]

    assert caught.value.code == "invalid_schedule_intended_window"
    assert caught.value.option == "intended_window"
    assert isinstance(caught.value, InvalidArgument)  # callers catching that keep working


@pytest.mark.parametrize("signal_id", ["", " padded ", "line\nbreak", "x" * 501])
def test_a_malformed_signal_id_is_refused(signal_id: str) -> None:
    with pytest.raises(InvalidScheduleSignalId) as caught:
        schedule_identity("wf", "t", signal_id=signal_id)

    assert caught.value.code == "invalid_schedule_signal_id"
    assert caught.value.option == "signal_id"


# -- starting ---------------------------------------------------------------------------------


def test_signal_id_fixes_the_run_id_and_is_recorded(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", signal_id="oban-job-7", now=NOW)

    assert result.decision is CronDecision.STARTED
    assert not result.duplicate
    assert UUID(result.run_id) == schedule_run_id(DailyDigest.name, "nightly", "oban-job-7")
    assert result.snapshot.context["schedule"] == {
        "workflow": DailyDigest.name,
        "trigger_name": "nightly",
        "cron_expression": "0 21 * * *",
        "timezone": "Europe/Berlin",
        "received_at": "2026-03-01T20:00:05Z",
        "signal_id": "oban-job-7",
        "idempotency": "return_existing_run",
        "idempotency_key": "oban-job-7",
    }


def test_a_complete_window_derives_the_identity(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW)

    signal_id = derive_signal_id(DailyDigest.name, "nightly", *WINDOW.values())
    assert result.signal_id == result.idempotency_key == signal_id
    assert UUID(result.run_id) == schedule_run_id(DailyDigest.name, "nightly", signal_id)
    schedule = result.snapshot.context["schedule"]
    assert schedule["intended_window"] == WINDOW
    assert schedule["received_at"] == "2026-03-01T20:00:05Z"  # separate from the window


def test_cron_runs_take_payload_defaults_and_keep_schedule_out_of_the_input(
    mesh: SquidMesh,
) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW)

    assert result.snapshot.input == {"channel": "ops"}


def test_the_receipt_is_a_start_cron_command_with_the_schedule_key(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", signal_id="s-1", now=NOW)

    [receipt] = result.snapshot.command_history
    assert receipt.signal_type == "start_cron"
    assert receipt.idempotency_key == "s-1"


@pytest.mark.parametrize(
    "identity",
    [{}, {"intended_window": {"start_at": WINDOW["start_at"]}}, {"intended_window": {}}],
)
def test_an_idempotent_trigger_without_identity_is_refused_and_writes_nothing(
    mesh: SquidMesh, identity: dict[str, object]
) -> None:
    before = written(mesh)

    with pytest.raises(MissingScheduleIdempotencyKey) as caught:
        start_cron(mesh, DailyDigest, "nightly", now=NOW, **identity)  # type: ignore[arg-type]

    assert caught.value.code == "missing_schedule_idempotency_key"
    assert caught.value.trigger == "nightly"
    assert written(mesh) == before


def test_a_malformed_window_writes_nothing(mesh: SquidMesh) -> None:
    before = written(mesh)

    with pytest.raises(InvalidScheduleIntendedWindow):
        start_cron(
            mesh,
            DailyDigest,
            "nightly",
            intended_window={"start_at": "soon", "end_at": WINDOW["end_at"]},
            now=NOW,
        )

    assert written(mesh) == before


def test_a_manual_trigger_is_not_a_cron_trigger(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidTrigger):
        start_cron(mesh, DailyDigest, "now", signal_id="s", now=NOW)


def test_a_payload_without_defaults_is_refused_before_anything_is_written(
    mesh: SquidMesh,
) -> None:
    before = written(mesh)

    with pytest.raises(PayloadValidationError):
        start_cron(mesh, RegionalReport, "daily", signal_id="s", now=NOW)

    assert written(mesh) == before


def test_return_existing_run_returns_the_first_run_without_a_second_receipt(
    mesh: SquidMesh,
) -> None:
    first = start_cron(mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW)
    before = written(mesh)

    again = start_cron(
        mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW + timedelta(minutes=3)
    )

    assert again.decision is CronDecision.RETURNED_EXISTING
    assert again.duplicate
    assert again.run_id == first.run_id
    assert len(again.snapshot.command_history) == 1
    assert again.snapshot.context["schedule"]["received_at"] == "2026-03-01T20:00:05Z"
    assert written(mesh) == before


def test_skip_duplicate_reports_a_skip_and_starts_nothing(mesh: SquidMesh) -> None:
    first = start_cron(mesh, DailyDigest, "quarterly_hour", signal_id="q-1", now=NOW)
    before = written(mesh)

    again = start_cron(mesh, DailyDigest, "quarterly_hour", signal_id="q-1", now=NOW)

    assert again.decision is CronDecision.SKIPPED
    assert again.run_id == first.run_id
    assert written(mesh) == before


def test_a_duplicate_with_another_payload_still_finds_the_first_run(mesh: SquidMesh) -> None:
    first = start_cron(mesh, DailyDigest, "nightly", signal_id="s-2", now=NOW)

    again = start_cron(
        mesh, DailyDigest, "nightly", signal_id="s-2", payload={"channel": "sales"}, now=NOW
    )

    assert again.duplicate
    assert again.run_id == first.run_id
    assert again.snapshot.input == {"channel": "ops"}


def test_a_trigger_without_idempotency_starts_a_run_per_delivery(mesh: SquidMesh) -> None:
    first = start_cron(mesh, DailyDigest, "hourly", intended_window=WINDOW, now=NOW)
    second = start_cron(mesh, DailyDigest, "hourly", intended_window=WINDOW, now=NOW)

    assert first.decision is second.decision is CronDecision.STARTED
    assert first.run_id != second.run_id
    schedule = second.snapshot.context["schedule"]
    assert schedule["signal_id"] == first.signal_id
    assert "idempotency" not in schedule and "idempotency_key" not in schedule


def test_a_trigger_without_idempotency_records_the_signal_id_as_the_receipt_key(
    mesh: SquidMesh,
) -> None:
    result = start_cron(mesh, DailyDigest, "hourly", signal_id="tick-7", now=NOW)
    again = start_cron(mesh, DailyDigest, "hourly", signal_id="tick-7", now=NOW)

    [receipt] = result.snapshot.command_history
    assert (receipt.signal_type, receipt.idempotency_key) == ("start_cron", "tick-7")
    assert again.run_id != result.run_id  # still a run per delivery
    assert result.idempotency_key is None


def test_a_trigger_without_identity_or_idempotency_still_starts(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "hourly", now=NOW)

    assert result.decision is CronDecision.STARTED
    assert "signal_id" not in result.snapshot.context["schedule"]


def test_unique_deliveries_start_once_even_without_trigger_idempotency(mesh: SquidMesh) -> None:
    first = start_cron(mesh, DailyDigest, "hourly", intended_window=WINDOW, unique=True, now=NOW)
    again = start_cron(mesh, DailyDigest, "hourly", intended_window=WINDOW, unique=True, now=NOW)

    assert again.decision is CronDecision.SKIPPED
    assert again.run_id == first.run_id


def test_steps_see_the_schedule_metadata_on_their_context(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW)

    mesh.drain(now=NOW)

    snapshot = mesh.inspect_run(result.run_id, now=NOW)
    assert snapshot.status == "completed"
    assert snapshot.context["seen_schedule"] == result.snapshot.context["schedule"]
    assert snapshot.context["seen_schedule"]["intended_window"] == WINDOW


def test_a_cron_start_result_is_json_safe(mesh: SquidMesh) -> None:
    result = start_cron(mesh, DailyDigest, "nightly", signal_id="s-3", now=NOW)

    dumped = result.model_dump(mode="json")

    assert dumped["decision"] == "started"
    assert CronStart.model_validate(dumped).run_id == result.run_id


@pytest.mark.shared_journal
def test_concurrent_deliveries_of_one_activation_start_one_run(open_mesh: OpenMesh) -> None:
    meshes = [open_mesh(workflows=[DailyDigest]) for _ in range(4)]
    results: list[CronStart] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(len(meshes))

    def deliver(mesh: SquidMesh) -> None:
        gate.wait()
        try:
            results.append(
                start_cron(mesh, DailyDigest, "nightly", intended_window=WINDOW, now=NOW)
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(m,)) for m in meshes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sorted(r.decision.value for r in results) == [
        "returned_existing",
        "returned_existing",
        "returned_existing",
        "started",
    ]
    assert len({r.run_id for r in results}) == 1
