"""A large value is stored once: the payload in RunStarted, an output in its RunnableApplied.

Runnables refer to the run state they were planned on and queue attempts carry no input, so
a run's journal costs about one copy of each value, not one per step and per attempt
(issue 18). Histories whose events still carry inputs load and run as written.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.domain import DispatchQueue, Runnable, WorkflowRun, runnable_key
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Limits,
    Ok,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

from conftest import OpenMesh

MIB = 1 << 20
ROOMY = Limits(max_value_bytes=4 * MIB, max_request_bytes=8 * MIB)
SEEN: dict[str, Any] = {}


class Blob(BaseModel):
    blob: str


class Measure(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        SEEN[ctx.step] = {k: len(str(v)) for k, v in input.items()}
        return Ok({f"{ctx.step}_done": True})


class Produce(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"report": "r" * (MIB // 2)})


class FlakyOnce(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        SEEN.setdefault("flaky_inputs", []).append(sorted(input))
        if ctx.attempt == 1:
            return Retry("not yet", delay=None)
        return Ok({})


class FourSteps(Workflow):
    payload = Blob
    triggers = [manual("go")]

    a = step(Measure)
    b = step(Measure)
    c = step(Measure)
    d = step(Measure)

    transitions = [
        transition(a, to=b),
        transition(b, to=c),
        transition(c, to=d),
        transition(d, to=COMPLETE),
    ]


class ProduceThenRead(Workflow):
    triggers = [manual("go")]

    produce = step(Produce)
    read = step(Measure)
    pick = step(Measure, input=["report"])
    flaky = step(FlakyOnce, input=["report"], retry=RetryPolicy(max_attempts=2))

    transitions = [
        transition(produce, to=read),
        transition(read, to=pick),
        transition(pick, to=flaky),
        transition(flaky, to=COMPLETE),
    ]


def journal_bytes(mesh: SquidMesh) -> int:
    stored = mesh.recorder.select_notifications(start=None, limit=100_000)  # type: ignore[attr-defined]
    return sum(len(n.state) for n in stored)


def test_a_large_payload_is_stored_about_once(open_mesh: OpenMesh) -> None:
    SEEN.clear()
    mesh = open_mesh(limits=ROOMY, workflows=[FourSteps])
    run = mesh.start(FourSteps, {"blob": "x" * MIB})
    mesh.drain(owner_id="w")

    assert mesh.inspect_run(run.run_id).status == "completed"
    # Each step saw the whole payload, read from the run.
    assert [SEEN[s]["blob"] for s in "abcd"] == [MIB] * 4
    assert sorted(SEEN["d"]) == ["a_done", "b_done", "blob", "c_done"]
    stored = journal_bytes(mesh)
    assert MIB < stored < 1.1 * MIB  # 9 copies before: RunStarted, 4 plans, 4 attempts


def test_a_large_output_is_stored_once_and_later_steps_still_see_it(open_mesh: OpenMesh) -> None:
    SEEN.clear()
    mesh = open_mesh(limits=ROOMY, workflows=[ProduceThenRead])
    run = mesh.start(ProduceThenRead, {})
    mesh.drain(owner_id="w")
    mesh.drain(owner_id="w", now=mesh.now() + timedelta(minutes=5))  # the retry's delay

    snapshot = mesh.inspect_run(run.run_id)
    assert snapshot.status == "completed"
    assert SEEN["read"]["report"] == MIB // 2
    assert SEEN["pick"] == {"report": MIB // 2}
    assert SEEN["flaky_inputs"] == [["report"], ["report"]]  # the retry keeps the input
    assert MIB // 2 < journal_bytes(mesh) < 0.6 * MIB
    planned = {r.step: r.input for r in snapshot.planned_runnables}
    assert set(planned["pick"]) == {"report"} and len(planned["pick"]["report"]) == MIB // 2


def test_a_history_whose_events_carry_inputs_still_runs(open_mesh: OpenMesh) -> None:
    """Runnables and attempts as 0.2 wrote them: the input copied into both events."""
    SEEN.clear()
    mesh = open_mesh(workflows=[FourSteps])
    spec = FourSteps.to_spec()
    now = mesh.now()
    run_id = uuid.uuid4()
    run = WorkflowRun.start(
        run_id=run_id,
        workflow=FourSteps.name,
        trigger="go",
        input={"blob": "payload"},
        queue="default",
        definition_fingerprint=spec.fingerprint,
        now=now,
    )
    key = runnable_key(run_id, "a", 1)
    old_input = {"blob": "as planned by 0.2"}
    run.plan([Runnable(key, "a", 1, old_input, now, "default", recovery=_recovery())], now=now)
    queue = mesh.get_queue()
    queue.enqueue_run(run_id, now=now)
    queue.trigger_event(
        DispatchQueue.AttemptScheduled,
        run_id=str(run_id),
        runnable_key=key,
        idempotency_key=key,
        attempt_number=1,
        step="a",
        input=old_input,
        visible_at=now,
        metadata={"workflow": FourSteps.name},
        timestamp=now,
    )
    mesh.save(run, queue)

    attempt = mesh.get_queue().attempt(key)
    assert attempt is not None and attempt.input == old_input
    mesh.drain(owner_id="w")

    assert SEEN["a"] == {"blob": len("as planned by 0.2")}
    assert SEEN["b"]["blob"] == len("payload")  # planned by this version: from the run
    assert mesh.inspect_run(run_id).status == "completed"


def _recovery() -> dict[str, bool]:
    return {"irreversible": False, "compensatable": True, "compensate": False}
