"""The built-in scheduler: ticks in the trigger's timezone, delivered once per tick."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from cron_workflows import DailyDigest, MinuteTick, RegionalReport

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime._cron import CronDecision, derive_signal_id, schedule_run_id
from squidmesh_es.runtime._scheduler import Scheduler, SchedulerPass, cron_ticks
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def of(result: SchedulerPass, trigger: str) -> list[str]:
    return [
        d.snapshot.context["schedule"]["intended_window"]["start_at"]
        for d in result.delivered
        if d.snapshot.trigger == trigger
    ]


# -- tick computation (no storage) ------------------------------------------------------------


def test_fixed_time_ticks_keep_local_time_across_the_spring_change() -> None:
    ticks = cron_ticks(
        "0 21 * * *", "Europe/Berlin", after=utc(2026, 3, 27), until=utc(2026, 3, 31)
    )

    assert [s for s, _ in ticks] == [
        utc(2026, 3, 27, 20),  # CET
        utc(2026, 3, 28, 20),
        utc(2026, 3, 29, 19),  # CEST from the 29th
        utc(2026, 3, 30, 19),
    ]
    assert ticks[1] == (utc(2026, 3, 28, 20), utc(2026, 3, 29, 19))  # a 23-hour window


def test_a_fixed_time_in_the_skipped_hour_fires_once_right_after_it() -> None:
    ticks = cron_ticks(
        "30 2 * * *", "America/New_York", after=utc(2026, 3, 7), until=utc(2026, 3, 10)
    )

    assert [s for s, _ in ticks] == [
        utc(2026, 3, 7, 7, 30),
        utc(2026, 3, 8, 7),  # 03:00 EDT: 02:30 did not exist
        utc(2026, 3, 9, 6, 30),
    ]


def test_a_fixed_time_in_the_repeated_hour_fires_once() -> None:
    ticks = cron_ticks(
        "30 1 * * *", "America/New_York", after=utc(2026, 10, 31), until=utc(2026, 11, 3)
    )

    assert [s for s, _ in ticks] == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, not again at 01:30 EST
        utc(2026, 11, 2, 6, 30),
    ]


def test_interval_ticks_follow_elapsed_time_through_the_repeated_hour() -> None:
    ticks = cron_ticks(
        "@hourly", "America/New_York", after=utc(2026, 11, 1, 4), until=utc(2026, 11, 1, 7)
    )

    assert [s for s, _ in ticks] == [utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)]


def test_ticks_are_after_the_start_and_up_to_and_including_the_end() -> None:
    ticks = cron_ticks("0 * * * *", "Etc/UTC", after=utc(2026, 1, 1, 1), until=utc(2026, 1, 1, 3))

    assert [s for s, _ in ticks] == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]


@pytest.mark.parametrize(
    ("expression", "zone"),
    [("@reboot", "Etc/UTC"), ("61 * * * *", "Etc/UTC"), ("* * * * *", "Mars/Base")],
)
def test_expressions_without_ticks_are_refused(expression: str, zone: str) -> None:
    with pytest.raises(InvalidArgument):
        cron_ticks(expression, zone, after=utc(2026, 1, 1), until=utc(2026, 1, 2))


def test_bounds_must_be_positive(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument):
        Scheduler(mesh, max_ticks=0)
    with pytest.raises(InvalidArgument):
        Scheduler(mesh, catch_up=timedelta(0))


# -- delivering -------------------------------------------------------------------------------


def test_a_due_tick_starts_a_run_with_its_window(mesh: SquidMesh) -> None:
    scheduler = Scheduler(mesh, workflows=[DailyDigest])

    result = scheduler.run_once(utc(2026, 3, 28, 20, 0, 30))  # 21:00:30 in Berlin

    [nightly] = [d for d in result.delivered if d.snapshot.trigger == "nightly"]
    assert nightly.decision is CronDecision.STARTED
    window = {"start_at": "2026-03-28T20:00:00Z", "end_at": "2026-03-29T19:00:00Z"}
    assert nightly.snapshot.context["schedule"]["intended_window"] == window
    signal_id = derive_signal_id(DailyDigest.name, "nightly", *window.values())
    assert nightly.run_id == str(schedule_run_id(DailyDigest.name, "nightly", signal_id))


def test_the_scheduler_uses_the_trigger_timezone_after_the_dst_change(mesh: SquidMesh) -> None:
    scheduler = Scheduler(mesh, workflows=[DailyDigest], catch_up=timedelta(minutes=5))

    before_change = scheduler.run_once(utc(2026, 3, 28, 20, 1))
    at_20_utc = scheduler.run_once(utc(2026, 3, 29, 20, 1))  # 22:01 CEST: 21:00 was 19:00Z
    at_19_utc = Scheduler(mesh, workflows=[DailyDigest], catch_up=timedelta(minutes=5)).run_once(
        utc(2026, 3, 29, 19, 1)
    )

    assert of(before_change, "nightly") == ["2026-03-28T20:00:00Z"]
    assert of(at_20_utc, "nightly") == []
    assert of(at_19_utc, "nightly") == ["2026-03-29T19:00:00Z"]


def test_a_second_pass_at_the_same_time_delivers_nothing(mesh: SquidMesh) -> None:
    scheduler = Scheduler(mesh, workflows=[MinuteTick])
    now = utc(2026, 3, 1, 12, 0, 10)

    first = scheduler.run_once(now)
    second = scheduler.run_once(now)

    assert len(first.started) == 1
    assert second.delivered == []


def test_a_restarted_scheduler_redelivers_as_a_duplicate_only(mesh: SquidMesh) -> None:
    now = utc(2026, 3, 1, 12, 0, 10)
    first = Scheduler(mesh, workflows=[MinuteTick]).run_once(now)

    restarted = Scheduler(mesh, workflows=[MinuteTick]).run_once(now + timedelta(seconds=5))

    [again] = restarted.delivered
    assert again.decision is CronDecision.SKIPPED
    assert again.run_id == first.started[0].run_id


@pytest.mark.shared_journal
def test_two_schedulers_on_one_journal_start_each_tick_once(open_mesh: OpenMesh) -> None:
    left = Scheduler(open_mesh(workflows=[DailyDigest]), workflows=[DailyDigest])
    right = Scheduler(open_mesh(workflows=[DailyDigest]), workflows=[DailyDigest])
    started: list[str] = []
    for minute in range(0, 61, 5):
        now = utc(2026, 3, 1, 20, 0, 30) + timedelta(minutes=minute)
        for scheduler in (left, right) if minute % 10 else (right, left):
            started += [d.run_id for d in scheduler.run_once(now).started]

    # nightly 20:00Z; hourly 20:00 and 21:00; quarter hours 20:00 (the newest of the first
    # pass's catch-up), 20:15, 20:30, 20:45, 21:00 -> 1 + 2 + 5 runs, each started once
    assert len(started) == len(set(started)) == 8


def test_a_trigger_without_idempotency_is_still_started_once_per_tick(mesh: SquidMesh) -> None:
    now = utc(2026, 3, 1, 13, 0, 1)
    first = Scheduler(mesh, workflows=[DailyDigest]).run_once(now)
    second = Scheduler(mesh, workflows=[DailyDigest]).run_once(now)

    [hourly] = [d for d in first.delivered if d.snapshot.trigger == "hourly"]
    [again] = [d for d in second.delivered if d.snapshot.trigger == "hourly"]
    assert hourly.decision is CronDecision.STARTED
    assert again.decision is CronDecision.SKIPPED
    assert again.run_id == hourly.run_id


def test_catch_up_delivers_only_the_newest_missed_ticks(mesh: SquidMesh) -> None:
    now = utc(2026, 3, 1, 12, 50)  # quarter hours since 11:50: 12:00, 12:15, 12:30, 12:45

    coalesced = Scheduler(mesh, workflows=[DailyDigest]).run_once(now)
    everything = Scheduler(mesh, workflows=[DailyDigest], max_ticks=10).run_once(now)

    assert of(coalesced, "quarterly_hour") == ["2026-03-01T12:45:00Z"]
    assert coalesced.dropped == 3 + 0  # hourly has one tick (12:00), nightly none
    assert of(everything, "quarterly_hour") == [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:15:00Z",
        "2026-03-01T12:30:00Z",
        "2026-03-01T12:45:00Z",
    ]
    assert [d.decision for d in everything.delivered if d.snapshot.trigger == "quarterly_hour"] == [
        CronDecision.STARTED,
        CronDecision.STARTED,
        CronDecision.STARTED,
        CronDecision.SKIPPED,
    ]


def test_ticks_older_than_catch_up_are_never_delivered(mesh: SquidMesh) -> None:
    scheduler = Scheduler(mesh, workflows=[MinuteTick], catch_up=timedelta(minutes=5))
    scheduler.run_once(utc(2026, 3, 1, 12, 0, 10))

    after_stall = scheduler.run_once(utc(2026, 3, 1, 14, 0, 10))

    assert of(after_stall, "every_minute") == ["2026-03-01T14:00:00Z"]
    assert after_stall.dropped == 4


def test_a_refused_delivery_is_reported_and_does_not_stop_the_others(
    mesh: SquidMesh, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = Scheduler(mesh, workflows=[RegionalReport, MinuteTick])
    now = utc(2026, 3, 1, 6, 0, 5)

    with caplog.at_level(logging.ERROR, logger="squidmesh_es.scheduler"):
        result = scheduler.run_once(now)
    again = scheduler.run_once(now + timedelta(seconds=1))

    [(activation, error)] = result.failed
    assert activation.workflow is RegionalReport
    assert getattr(error, "code", None) == "invalid_payload"
    assert "code=invalid_payload" in caplog.text
    assert len(result.started) == 1
    assert again.failed == []  # a refusal is not retried every pass


def test_the_scheduler_reads_the_injected_clock(mesh: SquidMesh, clock: ManualClock) -> None:
    scheduler = Scheduler(mesh, workflows=[MinuteTick], clock=clock)

    clock.set(utc(2026, 3, 1, 12, 0, 10))
    first = scheduler.run_once()
    clock.advance(timedelta(minutes=1))
    second = scheduler.run_once()

    assert of(first, "every_minute") == ["2026-03-01T12:00:00Z"]
    assert of(second, "every_minute") == ["2026-03-01T12:01:00Z"]


def test_without_a_list_it_schedules_every_registered_workflow(mesh: SquidMesh) -> None:
    mesh.register(MinuteTick)

    triggers = Scheduler(mesh).triggers()

    assert [(w.name, t.name) for w, t in triggers] == [(MinuteTick.name, "every_minute")]


def test_the_loop_starts_and_stops(mesh: SquidMesh, clock: ManualClock) -> None:
    clock.set(utc(2026, 3, 1, 12, 0, 10))
    scheduler = Scheduler(mesh, workflows=[MinuteTick], interval=timedelta(milliseconds=10))

    with scheduler:
        assert scheduler.running
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        run_id = str(
            schedule_run_id(
                MinuteTick.name,
                "every_minute",
                derive_signal_id(
                    MinuteTick.name, "every_minute", "2026-03-01T12:00:00Z", "2026-03-01T12:01:00Z"
                ),
            )
        )
        while datetime.now(UTC) < deadline:
            try:
                mesh.inspect_run(run_id)
                break
            except Exception:  # noqa: BLE001 - not there yet
                pass
    assert not scheduler.running
    assert mesh.inspect_run(run_id).trigger == "every_minute"
