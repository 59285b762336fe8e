"""Step classes of `deploy_workflows`, moved here by a refactor: same behaviour, new module."""

from __future__ import annotations

from squidmesh_es.workflow import JSONObject, Ok, Step, StepContext


class Reserve(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reserved": True})


class Right(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"right": 2})
