"""Step context: lineage and child runs, delegated to the runtime when there is one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from squidmesh_es.errors import ChildRunsUnavailable
from squidmesh_es.workflow import (
    ChildRun,
    JSONValue,
    Ok,
    ParentRun,
    Step,
    StepContext,
    Workflow,
    manual,
    step,
)

RUN = UUID("00000000-0000-4000-8000-000000000001")
CHILD = UUID("00000000-0000-4000-8000-000000000002")


class Deliver(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> Ok:
        return Ok()


class Receipt(Workflow):
    triggers = [manual("send_receipt")]
    deliver = step(Deliver)


@dataclass(frozen=True)
class Started:
    run_id: UUID


@dataclass
class RecordingStarter:
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def start_child_run(
        self,
        ctx: StepContext,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue],
        *,
        child_key: str,
        trigger: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> ChildRun:
        self.calls.append((ctx.step, workflow, dict(payload), child_key, trigger, queue, metadata))
        return Started(CHILD)


def _context(starter: RecordingStarter | None) -> StepContext:
    return StepContext(
        run_id=RUN,
        workflow="checkout",
        step="start_receipt",
        attempt=2,
        runnable_key="start_receipt:2",
        idempotency_key="run:start_receipt:2",
        claim_id="claim-7",
        schedule={"signal_id": "daily:2026-03-01"},
        parent=ParentRun(RUN, "fan_out", "fan_out:1", 1, "receipt_1"),
        child_runs=starter,
    )


def test_child_runs_are_started_through_the_runtime() -> None:
    starter = RecordingStarter()
    ctx = _context(starter)

    child = ctx.start_child_run(
        Receipt, {"invoice_id": "inv_1"}, child_key="receipt_inv_1", queue="mail"
    )

    assert child.run_id == CHILD
    assert starter.calls == [
        ("start_receipt", Receipt, {"invoice_id": "inv_1"}, "receipt_inv_1", None, "mail", None)
    ]


def test_context_without_a_runtime_cannot_start_child_runs() -> None:
    with pytest.raises(ChildRunsUnavailable) as caught:
        _context(None).start_child_run(Receipt, {}, child_key="k")

    assert (caught.value.code, caught.value.step) == ("child_runs_unavailable", "start_receipt")


def test_runtime_is_not_part_of_the_context_value() -> None:
    assert _context(RecordingStarter()) == _context(None)
    assert "RecordingStarter" not in repr(_context(RecordingStarter()))
