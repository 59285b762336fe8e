"""Workflows the control-command tests drive; importable by name for ``--import``."""

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
    pause,
    step,
    transition,
)


class RefundRequest(BaseModel):
    order_id: str
    amount: int = 10


class CheckOrder(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"checked": True})


class PayOut(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"paid": input["amount"]})


class CtlRefund(Workflow):
    """Check, wait for approval, then pay (irreversible); a rejection logs and completes."""

    payload = RefundRequest
    triggers = [manual("refund")]

    check = step(CheckOrder)
    review = approval(output="review")
    pay = step(PayOut, irreversible=True)
    declined = log("refund declined")

    transitions = [
        transition(check, to=review),
        transition(review, to=pay),
        transition(review, on=Outcome.ERROR, to=declined),
        transition(pay, to=COMPLETE),
        transition(declined, to=COMPLETE),
    ]


class CtlRestock(Workflow):
    """Check, then wait at a pause until the parcel is back."""

    payload = RefundRequest
    triggers = [manual("restock")]

    check = step(CheckOrder)
    parcel_back = pause()

    transitions = [transition(check, to=parcel_back), transition(parcel_back, to=COMPLETE)]


class CtlErasableRestock(Workflow):
    """`CtlRestock` whose runs hold personal data: ``squidmesh forget`` may erase it."""

    erasable = True
    payload = RefundRequest
    triggers = [manual("restock")]

    check = step(CheckOrder)
    parcel_back = pause()

    transitions = [transition(check, to=parcel_back), transition(parcel_back, to=COMPLETE)]
