"""Shared helpers for the projection tests: runs with varied shapes, and table comparisons."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

from projection_workflows import Audit, Billing

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.projections import TABLES, Projections
from squidmesh_es.testing import ManualClock


def start_runs(mesh: SquidMesh, clock: ManualClock, count: int) -> list[str]:
    """Start ``count`` runs a second apart: billing runs, some failing, and audit runs."""
    ids = []
    for i in range(count):
        workflow = Audit if i % 3 == 2 else Billing
        payload = {"invoice_id": f"inv-{i}", "fail": i % 4 == 1}
        key = f"key-{i}" if i % 2 == 0 else None
        ids.append(mesh.start(workflow, payload, idempotency_key=key).run_id)
        clock.advance(timedelta(seconds=1))
    return ids


def start_indexed_run(
    mesh: SquidMesh, clock: ManualClock, *, parent: str | None = None, **index: object
) -> str:
    """A run started directly on the journal with declared index values and lineage."""
    run_id = uuid4()
    context: dict[str, object] = {"index": index, "schedule": {"idempotency_key": "nightly-1"}}
    if parent is not None:
        context["parent"] = {"run_id": parent, "step": "fan", "child_key": "c1"}
    run = WorkflowRun.start(
        run_id=run_id,
        workflow="Ledger",
        trigger="cron",
        input={"invoice_id": index.get("invoice_id")},
        queue="ledger",
        context=context,
        now=clock.now(),
    )
    mesh.save(run)
    clock.advance(timedelta(seconds=1))
    return str(run_id)


def drain(mesh: SquidMesh, clock: ManualClock, projections: Projections | None = None) -> None:
    """Execute every visible attempt, catching projections up after each command if given."""
    while mesh.execute_next(owner_id="w1", now=clock.now()) is not None:
        if projections is not None:
            projections.after_command()
        clock.advance(timedelta(milliseconds=10))


def tables(projections: Projections) -> dict[str, list[dict[str, object]]]:
    return {t.name: projections.view.dump(t) for t in TABLES}


def uuids(values: Iterator[str] | list[str]) -> list[UUID]:
    return [UUID(v) for v in values]
