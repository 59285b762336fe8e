"""Saga checkout: when capture fails for good, undo what already happened, newest first.

Capturing the payment has no error route, so when its retries run out the runtime
compensates the completed steps in reverse order: it voids the authorization, then
releases the inventory. Set ``decline_capture`` to see it happen.

Run it: ``python examples/saga_checkout.py`` prints the workflow's shape, then checks out two
orders on an in-memory journal, one of them with a declined capture, and prints what the
rollback did.
"""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
    validate_spec,
)


class CheckoutRequest(BaseModel):
    """One order to check out."""

    order_id: str
    sku: str
    quantity: int = 1
    amount_cents: int
    decline_capture: bool = False
    """Make the capture fail, to show compensation."""


def compensated_output(input: JSONObject) -> JSONObject:
    """The output of the step being compensated, from a compensation step's input.

    A compensation runs with ``{"step": {"name", "runnable_key", "input", "output",
    "applied_at"}, "failure": ...}``: the completed step it undoes, and the failure that
    started the rollback.
    """
    completed = input.get("step")
    output = completed.get("output") if isinstance(completed, dict) else None
    return output if isinstance(output, dict) else {}


class ReserveInventory(Step):
    """Hold stock for the order."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        reservation = {"order_id": input["order_id"], "sku": input["sku"], "status": "held"}
        return Ok({"inventory_reservation": reservation})


class ReleaseInventory(Step):
    """Give the held stock back."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        reservation = compensated_output(input).get("inventory_reservation")
        if isinstance(reservation, dict):
            reservation = {**reservation, "status": "released"}
        return Ok({"released_inventory": reservation})


class AuthorizePayment(Step):
    """Authorize the amount on the customer's card."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        authorization = {"order_id": input["order_id"], "amount_cents": input["amount_cents"]}
        return Ok({"payment_authorization": {**authorization, "status": "authorized"}})


class VoidPaymentAuthorization(Step):
    """Void the authorization, releasing the customer's funds."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        authorization = compensated_output(input).get("payment_authorization")
        if isinstance(authorization, dict):
            authorization = {**authorization, "status": "voided"}
        return Ok({"voided_authorization": authorization})


class CapturePayment(Step):
    """Capture the authorized amount; a decline is retried once, then given up."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        if input["decline_capture"]:
            return Retry({"code": "capture_declined"})
        return Ok({"payment_capture": {"order_id": input["order_id"], "status": "captured"}})


class SagaCheckout(Workflow):
    """Reserve, authorize, capture; roll back on a capture that never succeeds."""

    payload = CheckoutRequest
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    authorize_payment = step(AuthorizePayment, compensate=VoidPaymentAuthorization)
    capture_payment = step(CapturePayment, retry=RetryPolicy(max_attempts=2))

    transitions = [
        transition(reserve_inventory, to=authorize_payment),
        transition(authorize_payment, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
    ]


def checkout_twice() -> None:
    """Check out one order that captures and one whose capture is declined for good."""
    with SquidMesh.open("memory://", workflows=[SagaCheckout]) as mesh:
        for order_id, decline in (("o-100", False), ("o-200", True)):
            order = {"order_id": order_id, "sku": "sku-7", "amount_cents": 4200}
            run = mesh.start(SagaCheckout, {**order, "decline_capture": decline})
            mesh.drain()
            snapshot = mesh.inspect_run(run.run_id)
            print(f"\n{order_id}: {snapshot.terminal_status}")
            for applied in snapshot.applied_runnables:
                print(f"  {applied.step:<34} {applied.outcome}")
            if snapshot.error is not None:
                print(f"  rollback: {snapshot.error['compensation']}")


if __name__ == "__main__":
    spec = SagaCheckout.to_spec()
    validate_spec(spec)
    print(spec.describe())
    checkout_twice()
