"""Workflows the dashboard tests show: an approval, a pause, a cron digest; importable by name."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Defer,
    JSONObject,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    cron,
    log,
    manual,
    pause,
    step,
    transition,
)


class Refund(BaseModel):
    order_id: str
    amount: int = 10
    api_token: str = "tok-secret-1"


class CheckOrder(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"checked": True, "card_number": "4111-1111"})


class PayOut(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"paid": input["amount"]})


class WebRefund(Workflow):
    """Check, wait for approval, then pay (irreversible); a rejection logs and completes."""

    payload = Refund
    triggers = [manual("refund")]
    index_keys = ["order_id"]

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


class WebRestock(Workflow):
    """Check, then wait at a pause until the parcel is back."""

    payload = Refund
    triggers = [manual("restock")]

    check = step(CheckOrder)
    parcel_back = pause()

    transitions = [transition(check, to=parcel_back), transition(parcel_back, to=COMPLETE)]


class Digest(BaseModel):
    channel: str = "ops"


class Echo(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"channel": input["channel"]})


class WebDigest(Workflow):
    """A nightly digest at 21:00 Berlin time."""

    payload = Digest
    triggers = [cron("nightly", "0 21 * * *", timezone="Europe/Berlin")]

    echo = step(Echo)
    transitions = [transition(echo, to=COMPLETE)]


class AwaitStock(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Defer:
        return Defer("out of stock", timedelta(hours=1))


class WebBackorder(Workflow):
    """A step that finds the stock missing and looks again in an hour."""

    payload = Refund
    triggers = [manual("backorder")]

    wait_for_stock = step(AwaitStock)
    transitions = [transition(wait_for_stock, to=COMPLETE)]
