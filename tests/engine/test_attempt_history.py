"""The run's own history keeps every attempt with its claim: who ran what, when, how it ended."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh, redact
from squidmesh_es.testing import ManualClock

from conftest import T0, OpenMesh
from engine_workflows import CALLS, Retrying, Sequential

LEASE = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def test_finished_attempts_keep_their_claim_facts_in_run_history(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    run_id = mesh.start(Sequential, {"order_id": "o1"}).run_id
    clock.advance(timedelta(seconds=1))
    mesh.execute_next(owner_id="worker-a", lease_for=LEASE)
    mesh.drain(owner_id="worker-b")

    history = mesh.inspect_run(run_id, include_history=True)

    assert history.terminal_status == "completed"
    assert [(r.step, r.status, r.outcome) for r in history.attempt_history] == [
        ("reserve", "applied", "ok"),
        ("charge", "applied", "ok"),
        ("ship", "applied", "ok"),
    ]
    first = history.attempt_history[0].claim
    assert first is not None
    assert (first.owner_id, first.outcome) == ("worker-a", "ok")
    assert first.claimed_at == T0 + timedelta(seconds=1)
    assert first.lease_until == T0 + timedelta(seconds=1) + LEASE
    assert first.finished_at == T0 + timedelta(seconds=1)
    assert first.claim_id
    claims = [r.claim for r in history.attempt_history]
    assert all(c is not None and c.owner_id == "worker-b" for c in claims[1:])
    assert len({c.claim_id for c in claims if c is not None}) == 3


def test_a_retried_attempt_keeps_the_claim_that_asked_for_the_retry(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    run_id = mesh.start(Retrying, {"succeed_on": 2}).run_id
    mesh.execute_next(owner_id="w1")
    clock.advance(timedelta(seconds=10))
    mesh.execute_next(owner_id="w2")

    history = mesh.inspect_run(run_id, include_history=True).attempt_history

    assert [(r.attempt_number, r.outcome) for r in history] == [(1, "error"), (2, "ok")]
    assert [(r.claim.owner_id, r.claim.outcome) for r in history if r.claim] == [
        ("w1", "retry"),
        ("w2", "ok"),
    ]


def test_a_cancelled_run_shows_the_attempts_it_planned_and_finished(mesh: SquidMesh) -> None:
    run_id = mesh.start(Sequential, {"order_id": "o1"}).run_id
    mesh.execute_next(owner_id="w1")

    cancelled = mesh.cancel(run_id, actor="ops")
    history = mesh.inspect_run(run_id, include_history=True)

    assert cancelled.terminal_status == "cancelled" and cancelled.attempts == []
    assert [(r.step, r.status) for r in history.attempt_history] == [
        ("reserve", "applied"),
        ("charge", "fenced"),
    ]
    reserve, charge = history.attempt_history
    assert reserve.claim is not None and reserve.claim.owner_id == "w1"
    assert charge.claim is None and charge.outcome is None


def test_claim_facts_are_for_auditors_and_never_carry_the_token(mesh: SquidMesh) -> None:
    run_id = mesh.start(Sequential, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w1")
    history = mesh.inspect_run(run_id, include_history=True)

    operator = redact(history, "operator").attempt_history[0].claim
    auditor = redact(history, "auditor").attempt_history[0].claim

    assert operator is not None and operator.owner_id != "w1"
    assert auditor is not None and auditor.owner_id == "w1"
    stored = mesh.get_run(run_id).applied
    assert all("token" not in json.dumps(a["claim"], default=str) for a in stored.values())


def test_a_history_written_before_claims_were_recorded_still_loads(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh()
    run_id = mesh.start(Sequential, {"order_id": "o1"}).run_id
    mesh.execute_next(owner_id="w1")
    run = mesh.get_run(run_id)
    [key] = [k for k in run.planned if k not in run.applied]
    run.apply_result(key, outcome="ok", result={"charged": 10}, now=mesh.now())
    [event] = run.collect_events()
    stored = mesh.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    del state["claim"]  # as earlier builds wrote it
    mesh.recorder.insert_events(
        [
            type(stored)(
                stored.originator_id,
                stored.originator_version,
                stored.topic,
                json.dumps(state).encode(),
            )
        ]
    )

    loaded = open_mesh().get_run(run_id)

    assert loaded.anomalies == []
    assert loaded.applied[key]["claim"] is None
    assert loaded.context["charged"] == 10
    history = open_mesh().inspect_run(run_id, include_history=True).attempt_history
    assert [(r.step, r.status, r.claim is None) for r in history] == [
        ("reserve", "applied", False),
        ("charge", "applied", True),
    ]
