"""Payment recovery: retry a flaky gateway, and credit the customer if it stays down.

Shows retries with exponential backoff owned by the workflow, a durable wait, a log step,
input mapping from nested paths, an error route marked as compensation, and a notification
that cannot be compensated (so replaying a run that sent it needs an explicit override).

Run it: ``python examples/payment_recovery.py`` prints the workflow's shape.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    JSONObject,
    Ok,
    Outcome,
    Recovery,
    Retry,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    log,
    manual,
    step,
    transition,
    validate_spec,
    wait,
)


class RecoveryRequest(BaseModel):
    """What an operator gives to recover one invoice."""

    account_id: str
    invoice_id: str
    attempt_id: str
    gateway_url: str


class LoadInvoice(Step):
    """Load the invoice to recover (a fixed record here, where a host would query its DB)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        invoice = {
            "id": input["invoice_id"],
            "account_id": input["account_id"],
            "amount_cents": 4200,
            "status": "past_due",
        }
        return Ok({"invoice": invoice})


class CheckGatewayStatus(Step):
    """Ask the gateway whether the payment settled; a gateway that is down is retried."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        if "unavailable" in str(input["gateway_url"]):
            return Retry({"code": "gateway_unavailable"})
        return Ok({"gateway_check": {"invoice_id": input["invoice_id"], "status": "settled"}})


class NotifyCustomer(Step):
    """Tell the customer; the idempotency key keeps a redelivery from sending twice."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        notification = {
            "channel": "email",
            "account_id": input["account_id"],
            "idempotency_key": ctx.idempotency_key,
        }
        return Ok({"notification": notification})


class IssueGatewayCredit(Step):
    """Credit the customer when the gateway never answered."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"credit": {"invoice_id": input["invoice_id"], "reason": "gateway_unavailable"}})


class PaymentRecovery(Workflow):
    """Recover a failed invoice payment."""

    version = "2026-05-26.payment-recovery"
    payload = RecoveryRequest
    triggers = [manual("payment_recovery")]

    load_invoice = step(LoadInvoice)
    wait_for_settlement = wait(timedelta(seconds=5))
    log_recovery_attempt = log("Invoice loaded, checking gateway status")
    check_gateway_status = step(
        CheckGatewayStatus,
        input={"invoice_id": "invoice.id", "gateway_url": "gateway_url"},
        retry=RetryPolicy(
            max_attempts=5,
            backoff=Backoff.exponential(min=timedelta(seconds=1), max=timedelta(seconds=30)),
        ),
    )
    notify_customer = step(NotifyCustomer, compensatable=False)
    issue_gateway_credit = step(IssueGatewayCredit, input={"invoice_id": "invoice.id"})

    transitions = [
        transition(load_invoice, to=wait_for_settlement),
        transition(wait_for_settlement, to=log_recovery_attempt),
        transition(log_recovery_attempt, to=check_gateway_status),
        transition(check_gateway_status, to=notify_customer),
        transition(
            check_gateway_status,
            on=Outcome.ERROR,
            to=issue_gateway_credit,
            recovery=Recovery.COMPENSATION,
        ),
        transition(notify_customer, to=COMPLETE),
        transition(issue_gateway_credit, to=COMPLETE),
    ]


if __name__ == "__main__":
    spec = PaymentRecovery.to_spec()
    validate_spec(spec)
    print(spec.describe())
