"""Workflows the projection tests start; importable by name for subprocesses."""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Error,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)


class Invoice(BaseModel):
    invoice_id: str
    fail: bool = False


class Load(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"loaded": input["invoice_id"]})


class Settle(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Error:
        if input.get("fail"):
            return Error({"message": "gateway said no"})
        return Ok({"settled": True})


class Billing(Workflow):
    payload = Invoice
    triggers = [manual("bill")]

    load = step(Load)
    settle = step(Settle, input=["fail"])

    transitions = [transition(load, to=settle), transition(settle, to=COMPLETE)]


class Audit(Workflow):
    payload = Invoice
    triggers = [manual("audit")]

    load = step(Load)

    transitions = [transition(load, to=COMPLETE)]
