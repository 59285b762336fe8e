"""Manual approval: the run pauses until an operator approves or rejects it.

Approving takes the ``ok`` route, rejecting the ``error`` route; the decision is stored under
``approval`` and both record steps read it back with an input selection.

Run it: ``python examples/manual_approval.py`` prints the workflow's shape.
"""

from __future__ import annotations

from pydantic import BaseModel

from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    JSONValue,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    manual,
    step,
    transition,
    validate_spec,
)


class ApprovalRequest(BaseModel):
    """The account whose change needs a reviewer."""

    account_id: str


def _decided_by(decision: JSONValue) -> JSONValue:
    """Who decided, from the approval step's output (the operator's actor, if given)."""
    return decision.get("actor") if isinstance(decision, dict) else None


class RecordApproval(Step):
    """Record that the change was approved."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        decided_by = _decided_by(input["approval"])
        return Ok({"status": "approved", "account_id": input["account_id"], "by": decided_by})


class RecordRejection(Step):
    """Record that the change was rejected."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        decided_by = _decided_by(input["approval"])
        return Ok({"status": "rejected", "account_id": input["account_id"], "by": decided_by})


class ManualApproval(Workflow):
    """Pause for a reviewer's decision, then record it."""

    payload = ApprovalRequest
    triggers = [manual("manual_approval")]

    wait_for_approval = approval(output="approval")
    record_approval = step(RecordApproval, input=["account_id", "approval"], output="approval")
    record_rejection = step(RecordRejection, input=["account_id", "approval"], output="approval")

    transitions = [
        transition(wait_for_approval, to=record_approval),
        transition(wait_for_approval, on=Outcome.ERROR, to=record_rejection),
        transition(record_approval, to=COMPLETE),
        transition(record_rejection, to=COMPLETE),
    ]


if __name__ == "__main__":
    spec = ManualApproval.to_spec()
    validate_spec(spec)
    print(spec.describe())
