"""Workflows whose steps leak secrets into their errors, for the redaction tests."""

from __future__ import annotations

from datetime import timedelta

from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    Error,
    JSONObject,
    Ok,
    Outcome,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    approval,
    manual,
    step,
    transition,
)

LEAKS: dict[str, str] = {"raised": "", "error": ""}
"""The texts the steps below fail with; the tests set them before running the steps."""


class RaisesLeak(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        raise RuntimeError(LEAKS["raised"])


class ReturnsLeak(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        return Error({"message": LEAKS["error"], "details": {"api_key": LEAKS["error"]}})


class Done(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"done": True})


RETRY = RetryPolicy(max_attempts=2, backoff=Backoff.fixed(timedelta(seconds=1)))


class Leaky(Workflow):
    """Raises (retried once), then fails with an ``Error``, then waits for an approval."""

    triggers = [manual("go")]

    raises = step(
        RaisesLeak, retry=RetryPolicy(max_attempts=2, backoff=Backoff.fixed(timedelta(seconds=1)))
    )
    returns = step(ReturnsLeak)
    review = approval(output="review")
    done = step(Done)

    transitions = [
        transition(raises, to=returns),
        transition(raises, on=Outcome.ERROR, to=returns),
        transition(returns, to=review),
        transition(returns, on=Outcome.ERROR, to=review),
        transition(review, to=done),
        transition(review, on=Outcome.ERROR, to=done),
        transition(done, to=COMPLETE),
    ]
