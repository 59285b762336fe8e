"""One workflow per scenario, as deployed before (``V1``) and after (``V2``) a code change.

Each pair shares its workflow name, as two deploys of one application would.
"""

from __future__ import annotations

from datetime import timedelta

import deploy_moved
from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    Error,
    JSONObject,
    Ok,
    Outcome,
    Retry,
    RetryPolicy,
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
    succeed_on: int = 1


class Reserve(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"reserved": True})


class Charge(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"charged": "v1"})


class ChargeFixed(Step):
    """The bug fix a deploy ships: runs in flight get it too."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"charged": "v2"})


class Notify(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"notified": True})


class Flaky(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        if ctx.attempt < int(input["succeed_on"]):
            return Retry({"code": "not_yet"})
        return Ok({"charged_on_attempt": ctx.attempt})


class Fetch(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"fetched": True})


class Left(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"left": 1})


class Right(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"right": 2})


class Join(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"joined": input["left"] + input["right"]})


class Audit(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"audited": True})


# -- a run paused at an approval --------------------------------------------------------------


class ApprovedV1(Workflow):
    name = "approved_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    charge = step(Charge, retry=RetryPolicy(max_attempts=2))

    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=charge),
        transition(charge, to=COMPLETE),
    ]


class ApprovedV2(Workflow):
    """Retry policy changed, a step added after the current one, the route changed, the
    reserve class moved to another module and the charge code fixed."""

    name = "approved_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(deploy_moved.Reserve)
    review = approval()
    rejected = log("rejected")
    charge = step(ChargeFixed, retry=RetryPolicy(max_attempts=3))
    notify = step(Notify)

    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=charge),
        transition(charge, to=notify),
        transition(notify, to=COMPLETE),
    ]


# -- a run waiting in a retry backoff ---------------------------------------------------------

BACKOFF = Backoff.fixed(timedelta(seconds=60))


class RetryingV1(Workflow):
    name = "retrying_order"
    payload = Order
    triggers = [manual("place")]

    charge = step(Flaky, retry=RetryPolicy(max_attempts=3, backoff=BACKOFF))
    transitions = [transition(charge, to=COMPLETE)]


class RetryingV2(Workflow):
    """No retries any more, a step added after the retrying one (so its route changed), and
    the step's class moved to another module with changed code."""

    name = "retrying_order"
    payload = Order
    triggers = [manual("place")]

    charge = step(deploy_moved.Flaky)
    notify = step(Notify)
    transitions = [transition(charge, to=notify), transition(notify, to=COMPLETE)]


# -- a run mid-dependency join ---------------------------------------------------------------


class JoinV1(Workflow):
    name = "joined_order"
    payload = Order
    triggers = [manual("place")]

    fetch = step(Fetch)
    left = step(Left, after=[fetch])
    right = step(Right, after=[fetch])
    join = step(Join, after=[left, right], input=["left", "right"])


class JoinFixed(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"joined": input["left"] + input["right"], "joined_by": "v2"})


class JoinV2(Workflow):
    """The join waits for one more step and has fixed code, the left branch retries, and
    the right branch's class moved."""

    name = "joined_order"
    payload = Order
    triggers = [manual("place")]

    fetch = step(Fetch)
    left = step(Left, after=[fetch], retry=RetryPolicy(max_attempts=3))
    right = step(deploy_moved.Right, after=[fetch])
    audit = step(Audit, after=[fetch])
    join = step(JoinFixed, after=[left, right, audit], input=["left", "right"])


# -- a step removed, then restored -----------------------------------------------------------


class RemovedV1(Workflow):
    name = "removed_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    charge = step(Charge)
    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]


class RemovedV2(Workflow):
    """The charge step is gone."""

    name = "removed_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    transitions = [transition(reserve, to=COMPLETE)]


# -- a step renamed under a declared ref ------------------------------------------------------


class RefV1(Workflow):
    name = "ref_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    charge = step(Charge, ref="payments.charge")
    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=charge),
        transition(charge, to=COMPLETE),
    ]


class RefV2(Workflow):
    """The step is renamed; its declared ref keeps its identity."""

    name = "ref_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    take_payment = step(ChargeFixed, ref="payments.charge")
    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=take_payment),
        transition(take_payment, to=COMPLETE),
    ]


# -- a saga whose compensation changes -------------------------------------------------------

RELEASED: list[str] = []
"""Which release's compensation code undid a reservation, in this process."""


class Release(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RELEASED.append("v1")
        return Ok({"released": True})


class ReleaseFixed(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RELEASED.append("v2")
        return Ok({"released": True})


class Decline(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        return Error({"message": "card declined"})


class SagaV1(Workflow):
    name = "saga_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve, compensate=Release)
    charge = step(Decline)
    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]


class SagaV2(Workflow):
    """The compensation's code is fixed."""

    name = "saga_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve, compensate=ReleaseFixed)
    charge = step(Decline)
    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]


class SagaV3(Workflow):
    """The compensation is gone from the code."""

    name = "saga_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    charge = step(Decline)
    transitions = [transition(reserve, to=charge), transition(charge, to=COMPLETE)]
