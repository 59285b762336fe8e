"""Steps behind the action keys of the runtime-spec and dynamic-work tests, and their specs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    ActionEntry,
    ActionRegistry,
    Defer,
    Error,
    JSONObject,
    Ok,
    Retry,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
    transition,
    wait,
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


# -- dynamic work ---------------------------------------------------------------------------


class NoInput(BaseModel):
    pass


class ScheduleDigest(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append("schedule_digest")
        return Ok({"chats": ["chat_1", "chat_2"]})


class Summarize(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append("summarize")
        return Ok({"summarized": True})


class DeliverDigest(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        RAN.append(f"deliver:{input['chat']}")
        return Ok({f"delivered_{input['chat']}": True})


class FlakyDelivery(Step):
    """Fails its first attempt, then delivers."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Retry:
        RAN.append(f"flaky:{ctx.attempt}")
        if ctx.attempt == 1:
            return Retry({"message": "chat service busy"})
        return Ok({"flaky_delivered": True})


class SlowDelivery(Step):
    """Defers once, then delivers: keeps a dynamic node pending past the forward path."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok | Defer:
        RAN.append("slow")
        if ":deferred:" not in ctx.runnable_key:
            return Defer({"message": "rate limited"}, timedelta(minutes=10))
        return Ok({"slow_delivered": True})


class BrokenDelivery(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Error:
        RAN.append("broken")
        return Error({"message": "chat deleted"})


def digest_registry() -> ActionRegistry:
    return ActionRegistry(
        {
            "digest.deliver": DeliverDigest,
            "digest.flaky": FlakyDelivery,
            "digest.slow": SlowDelivery,
            "digest.broken": BrokenDelivery,
        }
    )


class DigestFanout(Workflow):
    """schedule_digest -> wait a minute -> summarize: fan-out happens during the wait."""

    payload = NoInput
    triggers = [manual("send")]

    schedule_digest = step(ScheduleDigest)
    settle = wait(timedelta(minutes=1))
    summarize = step(Summarize)

    transitions = [
        transition(schedule_digest, to=settle),
        transition(settle, to=summarize),
        transition(summarize, to=COMPLETE),
    ]


def fanout(run_id: object, *nodes: dict[str, Any], key: str = "digest_fanout") -> dict[str, Any]:
    """A proposal from the run's schedule_digest step with ``nodes``."""
    return {
        "dynamic_key": key,
        "origin": {
            "runnable_key": f"{run_id}:schedule_digest:1",
            "step": "schedule_digest",
            "attempt": 1,
        },
        "reason": "runtime_fanout",
        "nodes": list(nodes),
    }


def deliver(chat: str, action: str = "digest.deliver", **extra: Any) -> dict[str, Any]:
    return {"id": f"deliver_digest:{chat}", "action": action, "input": {"chat": chat}, **extra}
