"""Poison attempts are quarantined: a step whose leases keep running out is given up.

A worker killed (or hung) by a step never reports an outcome; its lease runs out and
another worker takes the attempt over. After ``max_lease_expiries`` such takeovers the
attempt is failed with ``attempt_abandoned`` instead of being handed out again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.runtime._execution import claim_attempts
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Outcome,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

from engine_workflows import CALLS, Credit, called

LEASE = timedelta(seconds=10)


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


class Fragile(Step):
    """Succeeds whenever a worker lives long enough to finish it."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        called(self, ctx)
        return Ok({})


class Unrouted(Workflow):
    triggers = [manual("go")]

    fragile = step(Fragile)

    transitions = [transition(fragile, to=COMPLETE)]


class Routed(Workflow):
    triggers = [manual("go")]

    fragile = step(Fragile, retry=RetryPolicy(max_attempts=5, max_lease_expiries=1))
    credit = step(Credit)

    transitions = [
        transition(fragile, to=COMPLETE),
        transition(fragile, on=Outcome.ERROR, to=credit),
        transition(credit, to=COMPLETE),
    ]


def lose_claims(mesh: SquidMesh, clock: ManualClock, times: int) -> None:
    """Claim the visible attempt ``times`` times, each claim dying with its lease."""
    for n in range(times):
        [claim] = claim_attempts(
            mesh, "default", owner_id=f"doomed-{n}", limit=1, lease_for=LEASE, now=clock.now()
        )
        assert claim.attempt.lease_expiries == n
        clock.advance(LEASE)


def test_an_attempt_whose_lease_ran_out_three_times_fails_the_run_unrun(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    run_id = mesh.start(Unrouted, {}).run_id
    lose_claims(mesh, clock, 3)

    snap = mesh.execute_next(owner_id="w")

    assert snap is not None and snap.terminal_status == "failed"
    assert snap.error is not None and snap.error["code"] == "step_failed"
    assert snap.error["reason"]["code"] == "attempt_abandoned"
    assert CALLS == []  # the fourth claim did not run the step
    [applied] = mesh.inspect_run(run_id).applied_runnables
    assert applied.error is not None
    assert (applied.error["code"], applied.error["lease_expiries"]) == ("attempt_abandoned", 3)
    assert applied.error["retryable"] is False
    assert mesh.execute_next(owner_id="w") is None


def test_two_expiries_under_the_default_limit_still_run_the_step(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    mesh.start(Unrouted, {})
    lose_claims(mesh, clock, 2)

    snap = mesh.execute_next(owner_id="w")

    assert snap is not None and snap.terminal_status == "completed"
    assert [name for name, _ in CALLS] == ["Fragile"]


def test_an_abandoned_attempt_takes_its_error_route_without_retries(
    mesh: SquidMesh, clock: ManualClock
) -> None:
    mesh.start(Routed, {})
    lose_claims(mesh, clock, 1)

    mesh.drain(owner_id="w")

    assert [name for name, _ in CALLS] == ["Credit"]
    queue = mesh.get_queue()
    assert len(queue) == 0 and queue.counters["runs_closed"] == 1


def test_a_reloaded_queue_counts_the_same_expiries(
    open_mesh: object, backend: str, clock: ManualClock
) -> None:
    assert callable(open_mesh)
    mesh = open_mesh()
    mesh.start(Unrouted, {})
    lose_claims(mesh, clock, 2)
    [claim] = claim_attempts(
        mesh, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )

    reopened = open_mesh()
    [attempt] = reopened.get_queue().attempts.values()

    assert claim.attempt.lease_expiries == attempt.lease_expiries == 2
