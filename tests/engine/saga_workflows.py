"""Saga workflows for the compensation tests: reservations undone in reverse order."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Defer,
    Error,
    JSONObject,
    Ok,
    Outcome,
    Recovery,
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
    wait,
)

UNDONE: list[tuple[str, JSONObject]] = []
"""(callback class, input) of every compensation run in this process, in order."""

FORWARD: list[str] = []
"""Forward steps that must not run once a rollback began, as they ran in this process."""


class Checkout(BaseModel):
    order_id: str
    amount: int = 10


class ReserveInventory(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"sku": "sku-1", "order": input["order_id"]})


class ReleaseInventory(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        UNDONE.append((type(self).__name__, input))
        return Ok({"inventory_released": True})


class AuthorizePayment(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"authorization": f"auth-{input['order_id']}"})


class VoidPaymentAuthorization(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        UNDONE.append((type(self).__name__, input))
        return Ok({"authorization_voided": True})


class FailingVoid(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        UNDONE.append((type(self).__name__, input))
        return Error({"message": "gateway refused the void"})


class DeferringRelease(Step):
    """Defers once (the warehouse is closed), then releases."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Defer:
        UNDONE.append((type(self).__name__, input))
        if ":deferred:" not in ctx.runnable_key:
            return Defer({"message": "warehouse closed"}, timedelta(minutes=5))
        return Ok({"inventory_released": True})


class CapturePayment(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Retry:
        return Retry({"message": "capture declined"})


class ShipOrder(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        FORWARD.append(ctx.step)
        return Ok({"shipped": True})


class SendReceipt(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"receipt": "sent"})


class SagaCheckout(Workflow):
    """The guide's checkout: capture exhausts its retries, so authorization and stock unwind."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    authorize_payment = step(
        AuthorizePayment, compensate=VoidPaymentAuthorization, output="payment"
    )
    capture_payment = step(CapturePayment, retry=RetryPolicy(max_attempts=2))

    transitions = [
        transition(reserve_inventory, to=authorize_payment),
        transition(authorize_payment, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
    ]


class SagaWithFailingVoid(Workflow):
    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    authorize_payment = step(AuthorizePayment, compensate=FailingVoid)
    capture_payment = step(CapturePayment)

    transitions = [
        transition(reserve_inventory, to=authorize_payment),
        transition(authorize_payment, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
    ]


class SagaWithDeferringRelease(Workflow):
    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=DeferringRelease)
    capture_payment = step(CapturePayment)

    transitions = [
        transition(reserve_inventory, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
    ]


class SagaWithErrorRoute(Workflow):
    """An error route is the author's recovery: no compensation runs."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    capture_payment = step(CapturePayment)
    send_receipt = step(SendReceipt)

    transitions = [
        transition(reserve_inventory, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
        transition(
            capture_payment, on=Outcome.ERROR, to=send_receipt, recovery=Recovery.COMPENSATION
        ),
        transition(send_receipt, to=COMPLETE),
    ]


class SagaWithUncompensatableStep(Workflow):
    """Only steps that declare a callback are undone; the receipt cannot be unsent."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    send_receipt = step(SendReceipt, compensatable=False)
    capture_payment = step(CapturePayment)

    transitions = [
        transition(reserve_inventory, to=send_receipt),
        transition(send_receipt, to=capture_payment),
        transition(capture_payment, to=COMPLETE),
    ]


class SagaFanOut(Workflow):
    """Dependency mode: the capture fails while the reservation branch is still waiting."""

    payload = Checkout
    triggers = [manual("checkout")]

    warehouse_opens = wait(timedelta(hours=1))
    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory, after=[warehouse_opens])
    authorize_payment = step(AuthorizePayment, compensate=VoidPaymentAuthorization)
    capture_payment = step(CapturePayment, after=[authorize_payment])


class SagaAwaitingApproval(Workflow):
    """A reservation, then an approval: work scheduled beside it may fail while it waits."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=DeferringRelease)
    review = approval()
    ship = step(ShipOrder)

    transitions = [
        transition(reserve_inventory, to=review),
        transition(review, to=ship),
        transition(review, on=Outcome.ERROR, to=COMPLETE),
        transition(ship, to=COMPLETE),
    ]


class SagaWithLaterAudit(Workflow):
    """Dependency mode: a log step comes due a minute in, then the audit after it."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=DeferringRelease)
    capture_payment = step(CapturePayment, after=[reserve_inventory])
    hold = wait(timedelta(minutes=1))
    note = log("a minute passed", after=[hold])
    audit = step(ShipOrder, after=[note])


class SagaWithAuditAnHourAway(Workflow):
    """Dependency mode: nothing but built-ins stand before the audit, an hour away."""

    payload = Checkout
    triggers = [manual("checkout")]

    reserve_inventory = step(ReserveInventory, compensate=ReleaseInventory)
    capture_payment = step(CapturePayment, after=[reserve_inventory])
    hold = wait(timedelta(hours=1))
    note = log("an hour passed", after=[hold])
    audit = step(ShipOrder, after=[note])
