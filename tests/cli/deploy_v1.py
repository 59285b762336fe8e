"""``cli_order`` as first deployed: reserve, then charge."""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
)


class Order(BaseModel):
    order_id: str


class Reserve(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reserved": True})


class Charge(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"charged": True})


class CliOrder(Workflow):
    name = "cli_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    charge = step(Charge)
    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]
