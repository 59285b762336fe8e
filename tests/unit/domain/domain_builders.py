"""Builders for domain unit tests: aggregates in memory, no storage, fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from squidmesh_es.domain import (
    DispatchQueue,
    Runnable,
    WorkflowRun,
    hash_claim_token,
    runnable_key,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def sha(token: str) -> str:
    return hash_claim_token(token)


def new_queue(name: str = "default") -> DispatchQueue:
    return DispatchQueue.open(name, now=T0)


def schedule(
    queue: DispatchQueue,
    *,
    run_id: UUID | None = None,
    step: str = "charge",
    attempt: int = 1,
    visible_at: datetime = T0,
    fresh: bool = False,
) -> str:
    run_id = run_id or uuid4()
    key = runnable_key(run_id, step, attempt)
    queue.schedule(
        run_id=run_id,
        runnable_key=key,
        step=step,
        attempt_number=attempt,
        visible_at=visible_at,
        now=T0,
        fresh=fresh,
    )
    return key


def claim(
    queue: DispatchQueue,
    key: str,
    *,
    token: str = "t1",
    claim_id: str = "c1",
    owner: str = "w1",
    at: datetime = T0,
) -> None:
    queue.claim(
        key,
        claim_id=claim_id,
        claim_token_hash=sha(token),
        owner_id=owner,
        lease_for=LEASE,
        now=at,
    )


def new_run(*, run_id: UUID | None = None, queue: str = "default") -> WorkflowRun:
    return WorkflowRun.start(
        run_id=run_id or uuid4(),
        workflow="PaymentRecovery",
        trigger="manual",
        input={"invoice_id": "inv-1"},
        queue=queue,
        now=T0,
        definition_fingerprint="f" * 64,
        definition_version="v1",
    )


def runnable(run: WorkflowRun, step: str, attempt: int = 1, at: datetime = T0) -> Runnable:
    return Runnable(
        runnable_key=runnable_key(run.id, step, attempt),
        step=step,
        attempt_number=attempt,
        input={"invoice_id": "inv-1"},
        visible_at=at,
        queue=run.queue,
    )
