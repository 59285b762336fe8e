"""The engine end to end on every backend: start, execute_next, routes, joins, retries, waits."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import Conflict, InvalidArgument, PayloadValidationError, RunIdTaken
from squidmesh_es.testing import ManualClock

from conftest import T0, OpenMesh
from engine_workflows import (
    CALLS,
    Deferring,
    ErrorRouted,
    ErrorUnrouted,
    FanOut,
    FanOutBroken,
    FanOutEndingInALog,
    OnlyConditional,
    RaisingNoRoute,
    Retrying,
    Routed,
    Sequential,
    Waiting,
)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def drain(mesh: SquidMesh) -> int:
    return mesh.drain(owner_id="test-worker")


def test_sequential_run_completes_with_mapped_context(mesh: SquidMesh) -> None:
    started = mesh.start(Sequential, {"order_id": "o1", "amount": 25})

    assert started.status == "running"
    assert drain(mesh) == 3

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert snap.context == {
        "reservation": "r-o1",
        "payment": {"charged": 25},
        "shipped": True,
        "saw": ["charged", "reservation"],
    }
    assert [name for name, _ in CALLS] == ["Reserve", "Charge", "Ship"]


def test_invalid_payload_persists_nothing(mesh: SquidMesh) -> None:
    with pytest.raises(PayloadValidationError) as raised:
        mesh.start(Sequential, {"amount": "lots"})

    assert {issue.path[0] for issue in raised.value.issues} == {"order_id", "amount"}
    assert mesh.execute_next(owner_id="w") is None
    assert not list(mesh.recorder.select_notifications(start=1, limit=10))


def test_start_with_the_same_run_id_is_idempotent_and_a_different_request_conflicts(
    mesh: SquidMesh,
) -> None:
    run_id = "2b7f1a52-6f0e-4c1e-9a55-0d6f1c2e9a10"
    first = mesh.start(Sequential, {"order_id": "o1"}, run_id=run_id)
    again = mesh.start(Sequential, {"order_id": "o1"}, run_id=run_id)

    assert again.run_id == first.run_id
    assert len(mesh.get_run(run_id).command_history) == 1
    with pytest.raises(RunIdTaken) as taken:
        mesh.start(Sequential, {"order_id": "other"}, run_id=run_id)
    assert isinstance(taken.value, Conflict) and taken.value.code == "run_id_taken"


def test_idempotency_key_finds_the_first_run(mesh: SquidMesh) -> None:
    first = mesh.start(Sequential, {"order_id": "o1"}, idempotency_key="req-1")
    again = mesh.start(Sequential, {"order_id": "o1"}, idempotency_key="req-1")
    other = mesh.start(Sequential, {"order_id": "o1"}, idempotency_key="req-2")

    assert again.run_id == first.run_id
    assert other.run_id != first.run_id


def test_start_records_definition_and_commits_first_attempt(mesh: SquidMesh) -> None:
    snap = mesh.start(Sequential, {"order_id": "o1"}, metadata={"password": "x", "by": "ops"})
    run = mesh.get_run(snap.run_id)

    assert run.definition_fingerprint == Sequential.to_spec().fingerprint
    assert run.definition_version == Sequential.to_spec().version
    assert run.command_history[0]["signal_type"] == "start_run"
    assert run.command_history[0]["metadata"]["password"] != "x"
    attempts = mesh.get_queue().attempts_of(snap.run_id)
    assert [a.step for a in attempts] == ["reserve"]


@pytest.mark.parametrize(("amount", "lane"), [(500, "express"), (5, "standard")])
def test_conditional_route_or_fallback(mesh: SquidMesh, amount: int, lane: str) -> None:
    started = mesh.start(Routed, {"order_id": "o1", "amount": amount})
    drain(mesh)

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert snap.context["lane"] == lane


def test_unmatched_conditional_routes_fail_the_run(mesh: SquidMesh) -> None:
    started = mesh.start(OnlyConditional, {"order_id": "plain"})
    drain(mesh)

    run = mesh.get_run(started.run_id)
    assert run.terminal_status == "failed"
    assert run.error is not None
    assert run.error["reason"]["code"] == "no_matching_transition"


def test_fan_out_and_join_waits_for_every_dependency(mesh: SquidMesh) -> None:
    started = mesh.start(FanOut, {"order_id": "o1"})
    mesh.execute_next(owner_id="w")  # fetch

    attempts = mesh.get_queue().attempts_of(started.run_id)
    assert sorted(a.step for a in attempts) == ["left", "right"]
    mesh.execute_next(owner_id="w")  # one branch
    assert "join" not in {a.step for a in mesh.get_queue().attempts_of(started.run_id)}
    mesh.execute_next(owner_id="w")  # the other branch
    assert [a.step for a in mesh.get_queue().attempts_of(started.run_id)] == ["join"]
    drain(mesh)

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert snap.context["joined"] == 3


def test_join_never_runs_after_a_failed_dependency(mesh: SquidMesh) -> None:
    started = mesh.start(FanOutBroken, {"order_id": "o1"})
    drain(mesh)

    assert mesh.inspect_run(started.run_id).terminal_status == "failed"
    assert "Join" not in [name for name, _ in CALLS]
    assert not mesh.get_queue().attempts_of(started.run_id)


def test_a_dependency_run_ending_in_a_built_in_that_comes_due_later_completes(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(FanOutEndingInALog, {"order_id": "o1"})
    drain(mesh)
    assert not mesh.inspect_run(started.run_id).terminal  # the log is five minutes away

    clock.advance(timedelta(minutes=5))
    assert drain(mesh) == 1

    snap = mesh.inspect_run(started.run_id)
    assert snap.terminal_status == "completed"
    assert not mesh.get_queue().attempts_of(started.run_id)


def test_retry_backoff_is_honoured_through_the_clock(mesh: SquidMesh, clock: ManualClock) -> None:
    started = mesh.start(Retrying, {"succeed_on": 3})

    mesh.execute_next(owner_id="w")  # attempt 1 asks for a retry: visible 10 s later
    assert mesh.inspect_run(started.run_id).status == "retrying"
    clock.advance(timedelta(seconds=9, microseconds=999_999))
    assert mesh.execute_next(owner_id="w") is None
    clock.advance(timedelta(microseconds=1))
    mesh.execute_next(owner_id="w")  # attempt 2: backoff doubles, capped at 15 s
    clock.advance(timedelta(seconds=14))
    assert mesh.execute_next(owner_id="w") is None
    clock.advance(timedelta(seconds=1))
    snap = mesh.execute_next(owner_id="w")

    assert snap is not None and snap.terminal_status == "completed"
    assert snap.context == {"flaky_ok_on": 3}
    assert [key.rsplit(":", 1)[1] for _, key in CALLS] == ["1", "2", "3"]


def test_exhausted_retries_take_the_error_route(mesh: SquidMesh, clock: ManualClock) -> None:
    started = mesh.start(Retrying, {"succeed_on": 99})
    for _ in range(3):
        mesh.execute_next(owner_id="w")
        clock.advance(timedelta(seconds=15))
    drain(mesh)

    run = mesh.get_run(started.run_id)
    assert run.terminal_status == "completed"
    assert run.context == {"credited": True}
    flaky = [a for a in run.applied.values() if a["step"] == "flaky"]
    assert [a["error"]["code"] for a in flaky] == ["step_retry", "step_retry", "retries_exhausted"]


def test_raised_exception_with_retries_left_is_retried_then_fails_the_run(
    mesh: SquidMesh,
) -> None:
    started = mesh.start(RaisingNoRoute)
    drain(mesh)

    run = mesh.get_run(started.run_id)
    assert run.terminal_status == "failed"
    assert run.error is not None
    assert run.error["reason"]["reason"] == {"type": "RuntimeError", "message": "boom"}
    assert len(CALLS) == 2


def test_error_outcome_takes_the_error_route_without_retrying(mesh: SquidMesh) -> None:
    started = mesh.start(ErrorRouted)
    drain(mesh)

    assert mesh.inspect_run(started.run_id).terminal_status == "completed"
    assert [name for name, _ in CALLS] == ["Refuses", "Credit"]


def test_error_outcome_without_route_fails_the_run_without_retrying(mesh: SquidMesh) -> None:
    started = mesh.start(ErrorUnrouted)
    drain(mesh)

    run = mesh.get_run(started.run_id)
    assert run.terminal_status == "failed"
    assert run.error is not None
    assert run.error["reason"]["code"] == "step_error"
    assert len(CALLS) == 1


def test_wait_makes_the_successor_visible_exactly_on_time_and_log_writes_a_record(
    mesh: SquidMesh, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    started = mesh.start(Waiting, {"order_id": "o1"})
    mesh.execute_next(owner_id="w")  # reserve; the wait is applied at once

    assert mesh.get_queue().next_visible_at() == T0 + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
    assert mesh.execute_next(owner_id="w") is None
    clock.advance(timedelta(microseconds=1))
    with caplog.at_level(logging.INFO, logger="squidmesh_es.steps"):
        mesh.execute_next(owner_id="w")  # the log step, visible once the wait is over

    records = [r for r in caplog.records if r.name == "squidmesh_es.steps"]
    assert [(r.levelname, r.getMessage()) for r in records] == [("WARNING", "cooled off")]
    assert records[0].squidmesh_run_id == str(started.run_id)  # type: ignore[attr-defined]
    assert records[0].squidmesh_step == "note"  # type: ignore[attr-defined]
    snap = mesh.execute_next(owner_id="w")
    assert snap is not None and snap.terminal_status == "completed"
    assert [name for name, _ in CALLS] == ["Reserve", "Charge"]


def test_execute_next_refuses_bad_options(mesh: SquidMesh) -> None:
    with pytest.raises(InvalidArgument):
        mesh.execute_next(owner_id="")
    with pytest.raises(InvalidArgument):
        mesh.execute_next(owner_id="w", lease_for=timedelta(0))
    with pytest.raises(InvalidArgument):
        mesh.execute_next(owner_id="w", heartbeat_interval=timedelta(milliseconds=10))


def test_a_reopened_journal_continues_the_run(open_mesh: OpenMesh) -> None:
    first = open_mesh()
    started = first.start(Sequential, {"order_id": "o1"})
    first.execute_next(owner_id="w")

    second = open_mesh(workflows=[Sequential])
    assert second.drain(owner_id="w2") == 2
    assert second.inspect_run(started.run_id).terminal_status == "completed"


def test_deferral_runs_the_step_again_later_without_spending_retries(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    started = mesh.start(Deferring)

    mesh.execute_next(owner_id="w")
    snap = mesh.inspect_run(started.run_id)
    [pending] = snap.scheduled_attempts
    assert pending.runnable_key.endswith(":settle:1:deferred:1")
    assert pending.attempt_number == 1
    assert pending.visible_at == T0 + timedelta(minutes=1)
    clock.advance(timedelta(minutes=1))
    mesh.execute_next(owner_id="w")  # defers once more
    clock.advance(timedelta(minutes=1))
    final = mesh.execute_next(owner_id="w")

    assert final is not None and final.terminal_status == "completed"
    assert final.context == {"settled_on_attempt": 1}
    run = mesh.get_run(started.run_id)
    outcomes = [a["outcome"] for a in run.applied.values()]
    assert outcomes == ["deferred", "deferred", "ok"]
    deferred = run.planned[f"{started.run_id}:settle:1:deferred:2"]["deferred"]
    assert deferred["reason"] == {"status": "pending"}
    assert deferred["deferred_from"].endswith(":deferred:1")


@pytest.mark.parametrize("key", ["", "   "])
def test_a_blank_idempotency_key_is_refused_before_anything_is_written(
    mesh: SquidMesh, key: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        mesh.start(Sequential, {"order_id": "o1"}, idempotency_key=key)

    assert raised.value.option == "idempotency_key"
    assert not list(mesh.recorder.select_notifications(start=1, limit=10))


@pytest.mark.parametrize("value", [{"a"}, ("a", "b"), b"a", float("inf")])
def test_metadata_that_json_would_not_bring_back_is_refused_before_anything_is_written(
    mesh: SquidMesh, value: object
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        mesh.start(Sequential, {"order_id": "o1"}, metadata={"ticket": value})  # type: ignore[dict-item]

    assert raised.value.option == "metadata"
    assert not list(mesh.recorder.select_notifications(start=1, limit=10))
