"""Step classes of `deploy_workflows`, moved here by a refactor (one of them also fixed)."""

from __future__ import annotations

from squidmesh_es.workflow import JSONObject, Ok, Retry, Step, StepContext


class Reserve(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reserved": True})


class Right(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"right": 2})


class Flaky(Step):
    """Moved, and its code changed: it now says which release ran it."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        if ctx.attempt < int(input["succeed_on"]):
            return Retry({"code": "not_yet"})
        return Ok({"charged_on_attempt": ctx.attempt, "by": "v2"})
