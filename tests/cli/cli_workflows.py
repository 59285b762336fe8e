"""Workflows the command-line tests start; importable by name for ``--import``."""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    ActionRegistry,
    Error,
    JSONObject,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    greater_than,
    manual,
    pause,
    step,
    transition,
)


class Order(BaseModel):
    order_id: str
    amount: int = 10


class Review(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reviewed": True, "secret_note": "keep-me-private"})


class Express(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"lane": "express"})


class Standard(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"lane": "standard"})


class CliRouted(Workflow):
    """Review, then an express lane for large orders or the standard lane."""

    payload = Order
    triggers = [manual("route")]

    review = step(Review)
    express = step(Express)
    standard = step(Standard)

    transitions = [
        transition(review, to=express, when=greater_than("amount", 100)),
        transition(review, to=standard),
        transition(express, to=COMPLETE),
        transition(standard, to=COMPLETE),
    ]


class CliApproved(Workflow):
    """Review, then an approval gate before the express lane."""

    payload = Order
    triggers = [manual("approve")]

    review = step(Review)
    gate = approval(output="gate")
    express = step(Express)

    transitions = [
        transition(review, to=gate),
        transition(gate, to=express),
        transition(gate, on=Outcome.ERROR, to=COMPLETE),
        transition(express, to=COMPLETE),
    ]


class CliPaused(Workflow):
    """Review, then a pause."""

    payload = Order
    triggers = [manual("hold")]

    review = step(Review)
    hold = pause()

    transitions = [transition(review, to=hold), transition(hold, to=COMPLETE)]


class Hold(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"held": True})


class Release(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"released": True})


class Charge(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        return Error({"message": "card declined"})


class CliSaga(Workflow):
    """Hold funds, then charge; the charge fails, so the hold is released."""

    payload = Order
    triggers = [manual("pay")]

    hold = step(Hold, compensate=Release)
    charge = step(Charge)

    transitions = [transition(hold, to=charge), transition(charge, to=COMPLETE)]


def cli_actions() -> ActionRegistry:
    """Action keys for the runtime-spec run of the command-line tests."""
    return ActionRegistry({"cli.review": Review, "cli.express": Express})


CLI_SPEC = {
    "workflow": "cli_spec",
    "triggers": [{"name": "go", "type": "manual"}],
    "steps": [
        {"name": "review", "kind": "custom", "action": "cli.review"},
        {"name": "express", "kind": "custom", "action": "cli.express"},
    ],
    "transitions": [
        {"from": "review", "on": "ok", "to": "express"},
        {"from": "express", "on": "ok", "to": "complete"},
    ],
}
"""A runtime-authored spec: the run stores it, so no --import is needed to draw it."""
