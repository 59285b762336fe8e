"""Dependency recovery: two independent roots, joined by a step that waits for both.

The join reads named values from nested paths of the run context, so the loaders' outputs
reach it under names of its own choosing.

Run it: ``python examples/dependency_recovery.py`` prints the workflow's shape.
"""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    validate_spec,
)


class RecoveryTarget(BaseModel):
    """The account and invoice to prepare a notification for."""

    account_id: str
    invoice_id: str


class LoadAccount(Step):
    """Load the account (a fixed record here)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"account": {"id": input["account_id"], "tier": "standard"}})


class LoadInvoice(Step):
    """Load the invoice (a fixed record here)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"invoice": {"id": input["invoice_id"], "amount_cents": 4200}})


class PrepareNotification(Step):
    """Join both loads into the notification to send."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        template = "priority" if input["account_tier"] == "gold" else "standard"
        notification = {
            "account_id": input["account_id"],
            "invoice_id": input["invoice_id"],
            "template": template,
        }
        return Ok({"notification": notification})


class DependencyRecovery(Workflow):
    """Load account and invoice independently, then prepare the notification."""

    payload = RecoveryTarget
    triggers = [manual("dependency_recovery")]

    load_account = step(LoadAccount, input=["account_id"])
    load_invoice = step(LoadInvoice, input=["invoice_id"])
    prepare_notification = step(
        PrepareNotification,
        after=[load_account, load_invoice],
        input={
            "account_id": "account.id",
            "invoice_id": "invoice.id",
            "account_tier": "account.tier",
        },
    )


if __name__ == "__main__":
    spec = DependencyRecovery.to_spec()
    validate_spec(spec)
    print(spec.describe())
