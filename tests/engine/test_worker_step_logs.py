"""A worker logs one structured record per settled step outcome: INFO for completed work,
WARNING when a retry is scheduled, ERROR when a step fails for good."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from squidmesh_es.runtime import SystemClock
from squidmesh_es.workflow import (
    COMPLETE,
    Error,
    JSONObject,
    Ok,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)

from conftest import OpenMesh

STEP_LOGGER = "squidmesh_es.worker.steps"


class FailsFirst(Step):
    """Raises on its first attempt (a retryable failure), then succeeds."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        if ctx.attempt == 1:
            raise RuntimeError("token=hunter2 flaked")
        return Ok({})


class Refuses(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        return Error({"message": "card declined", "password": "hunter2"})


class Flaky(Workflow):
    triggers = [manual("go")]
    shaky = step(FailsFirst, retry=RetryPolicy(max_attempts=2))
    refuse = step(Refuses)
    transitions = [transition(shaky, to=refuse), transition(refuse, to=COMPLETE)]


def test_each_outcome_is_one_record_with_the_attempts_facts(
    open_mesh: OpenMesh, caplog: pytest.LogCaptureFixture
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(Flaky).run_id

    with caplog.at_level(logging.INFO, logger=STEP_LOGGER):
        with mesh.worker(owner_id="w-logs"):
            deadline = time.monotonic() + 30
            while not mesh.get_run(run_id).is_terminal:
                assert time.monotonic() < deadline, "the run did not finish in time"
                time.sleep(0.02)

    records = [r for r in caplog.records if r.name == STEP_LOGGER]
    facts: list[dict[str, Any]] = [
        {k: getattr(r, k) for k in ("run_id", "workflow", "step", "attempt", "outcome", "owner")}
        for r in records
    ]
    base = {"run_id": run_id, "workflow": "Flaky", "owner": "w-logs"}
    assert facts == [
        {**base, "step": "shaky", "attempt": 1, "outcome": "retrying"},
        {**base, "step": "shaky", "attempt": 2, "outcome": "completed"},
        {**base, "step": "refuse", "attempt": 1, "outcome": "failed"},
    ]
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO, logging.ERROR]
    assert all(r.duration_ms >= 0 and r.queue == "default" for r in records)  # type: ignore[attr-defined]
    assert "step shaky of run " in records[0].getMessage()
    assert "hunter2" not in caplog.text
