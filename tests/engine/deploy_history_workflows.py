"""The workflow of the stored deploy history (``tests/fixtures/deploy_history_0_1.sqlite``).

The fixture was written by the build before graphs were stored (commit c645770) with
``Release1``; keep this module's name and its step classes, whose ``module:QualName`` is part
of the fingerprints stored there.
"""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    log,
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


class Release1(Workflow):
    name = "history_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    charge = step(Charge)
    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=charge),
        transition(charge, to=COMPLETE),
    ]


PAUSED = "aaaaaaaa-0000-4000-8000-000000000001"
"""Paused at its approval."""
CHARGING = "aaaaaaaa-0000-4000-8000-000000000002"
"""Approved; its charge attempt is waiting."""
