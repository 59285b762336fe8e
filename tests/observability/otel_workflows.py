"""Workflows the telemetry tests run, importable by the worker subprocesses too."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from squidmesh_es.workflow import (
    COMPLETE,
    Defer,
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


class Noop(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({})


class Traced(Workflow):
    triggers = [manual("go")]
    first = step(Noop)
    second = step(Noop)
    transitions = [transition(first, to=second), transition(second, to=COMPLETE)]


class AsyncChild(Step):
    """An async step that notes the span current while it runs (its code's spans nest there)."""

    current_spans: list[int] = []

    async def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        from opentelemetry import trace

        await asyncio.sleep(0.01)
        AsyncChild.current_spans.append(trace.get_current_span().get_span_context().span_id)
        return Ok({})


class TracedAsync(Workflow):
    triggers = [manual("go")]
    first = step(AsyncChild)
    second = step(Noop)
    transitions = [transition(first, to=second), transition(second, to=COMPLETE)]


class FailsFirst(Step):
    """Raises on its first attempt (a retryable failure), then succeeds."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        if ctx.attempt == 1:
            raise RuntimeError("token=hunter2 flaked")
        return Ok({})


class DefersOnce(Step):
    """Defers the first time it runs for a run (the attempt number stays), then succeeds."""

    deferred: set[str] = set()

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Defer:
        if str(ctx.run_id) not in DefersOnce.deferred:
            DefersOnce.deferred.add(str(ctx.run_id))
            return Defer({"why": "not ready"}, delay=timedelta(milliseconds=50))
        return Ok({})


class Refuses(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        return Error({"message": "card declined", "password": "hunter2"})


class Mixed(Workflow):
    """Every outcome once: a retry, a deferral, completions and a failure for good."""

    triggers = [manual("go")]
    shaky = step(FailsFirst, retry=RetryPolicy(max_attempts=2))
    wait = step(DefersOnce)
    refuse = step(Refuses)
    transitions = [
        transition(shaky, to=wait),
        transition(wait, to=refuse),
        transition(refuse, to=COMPLETE),
    ]


class Slow(Step):
    """Sleeps ``SLOW_STEP_SECONDS`` (default 2), then completes.

    It first creates the file ``SLOW_STEP_STARTED`` names, if set, so a test knows it runs.
    """

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        started = os.environ.get("SLOW_STEP_STARTED")
        if started:
            Path(started).touch()
        time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "2")))
        return Ok({"slept": True})


class Sleepy(Workflow):
    triggers = [manual("go")]
    nap = step(Slow)
    transitions = [transition(nap, to=COMPLETE)]
