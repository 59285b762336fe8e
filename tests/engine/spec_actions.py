"""Steps behind the action keys of the runtime-spec tests, and the specs that name them."""

from __future__ import annotations

from typing import Any

from squidmesh_es.workflow import (
    ActionEntry,
    ActionRegistry,
    Error,
    JSONObject,
    Ok,
    Step,
    StepContext,
)

RAN: list[str] = []
"""Action keys run in this process, in order."""


class LoadInvoice(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append("billing.load_invoice")
        return Ok({"invoice": {"id": input["invoice_id"], "due": 120}})


class SendReminder(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append("billing.send_reminder")
        return Ok({"reminded": input["invoice"]["id"]})


class ChargeCard(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        RAN.append("billing.charge_card")
        return Error({"message": "card declined"})


class ReleaseHold(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append("billing.release_hold")
        return Ok({"hold_released": input["step"]["name"]})


def registry(**overrides: Any) -> ActionRegistry:
    actions: dict[str, Any] = {
        "billing.load_invoice": LoadInvoice,
        "billing.send_reminder": SendReminder,
        "billing.charge_card": ChargeCard,
        "billing.release_hold": ReleaseHold,
    }
    actions.update(overrides)
    return ActionRegistry(actions)


def disabled(step: type[Step]) -> ActionEntry:
    return ActionEntry(step, enabled=False)


def reminder_spec(**changes: Any) -> dict[str, Any]:
    """load_invoice -> send_reminder -> complete, named by action keys only."""
    spec: dict[str, Any] = {
        "workflow": "invoice_reminder",
        "version": "editor-7",
        "triggers": [{"name": "remind", "type": "manual"}],
        "payload": [{"name": "invoice_id", "type": "string", "required": True, "nullable": False}],
        "steps": [
            {"name": "load", "kind": "custom", "action": "billing.load_invoice"},
            {"name": "notify", "kind": "custom", "action": "billing.send_reminder"},
        ],
        "transitions": [
            {"from": "load", "on": "ok", "to": "notify"},
            {"from": "notify", "on": "ok", "to": "complete"},
        ],
    }
    spec.update(changes)
    return spec


def charge_spec() -> dict[str, Any]:
    """load_invoice (undone by release_hold) -> charge_card, which fails with no error route."""
    return {
        "workflow": "invoice_charge",
        "triggers": [{"name": "charge", "type": "manual"}],
        "payload": [{"name": "invoice_id", "type": "string", "required": True, "nullable": False}],
        "steps": [
            {
                "name": "load",
                "kind": "custom",
                "action": "billing.load_invoice",
                "compensate": {"action": "billing.release_hold"},
            },
            {"name": "charge", "kind": "custom", "action": "billing.charge_card"},
        ],
        "transitions": [
            {"from": "load", "on": "ok", "to": "charge"},
            {"from": "charge", "on": "ok", "to": "complete"},
        ],
    }
