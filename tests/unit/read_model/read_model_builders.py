"""Builders for read-model tests: a run and its queue driven in memory, at fixed times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from squidmesh_es.domain import (
    DispatchQueue,
    ManualKind,
    Runnable,
    TerminalStatus,
    WorkflowRun,
    hash_claim_token,
    runnable_key,
)
from squidmesh_es.read_model import RunSnapshot, SnapshotReason, build_run_snapshot
from squidmesh_es.workflow import WorkflowSpec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
RUN_ID = UUID("00000000-0000-4000-8000-000000000001")
TOKEN = "claim-token-secret-value"


def transition_spec() -> WorkflowSpec:
    """load -> check -> notify -> complete; check's error route goes to credit."""
    return WorkflowSpec.from_dict(
        {
            "workflow": "billing",
            "version": "v1",
            "triggers": [{"name": "go", "type": "manual"}],
            "steps": [
                {"name": "load", "kind": "custom", "ref": "billing.steps:Load"},
                {"name": "check", "kind": "custom", "ref": "billing.steps:Check"},
                {"name": "notify", "kind": "custom", "ref": "billing.steps:Notify"},
                {"name": "credit", "kind": "custom", "ref": "billing.steps:Credit"},
            ],
            "transitions": [
                {"from": "load", "on": "ok", "to": "check"},
                {"from": "check", "on": "ok", "to": "notify"},
                {"from": "check", "on": "error", "to": "credit", "recovery": "compensation"},
                {"from": "notify", "on": "ok", "to": "complete"},
                {"from": "credit", "on": "ok", "to": "complete"},
            ],
        }
    )


def chain_spec() -> WorkflowSpec:
    """a -> b -> c, with a's error route going straight to c."""
    return WorkflowSpec.from_dict(
        {
            "workflow": "chain",
            "triggers": [{"name": "go", "type": "manual"}],
            "steps": [
                {"name": "a", "kind": "custom", "ref": "chain.steps:A"},
                {"name": "b", "kind": "custom", "ref": "chain.steps:B"},
                {"name": "c", "kind": "custom", "ref": "chain.steps:C"},
                {"name": "d", "kind": "custom", "ref": "chain.steps:D"},
            ],
            "transitions": [
                {"from": "a", "on": "ok", "to": "b"},
                {"from": "a", "on": "error", "to": "d"},
                {"from": "b", "on": "ok", "to": "c"},
                {"from": "c", "on": "ok", "to": "complete"},
                {"from": "d", "on": "ok", "to": "complete"},
            ],
        }
    )


def dependency_spec() -> WorkflowSpec:
    """Two roots, account and invoice, joined by prepare."""
    return WorkflowSpec.from_dict(
        {
            "workflow": "joins",
            "triggers": [{"name": "go", "type": "manual"}],
            "steps": [
                {"name": "account", "kind": "custom", "ref": "billing.steps:Account"},
                {"name": "invoice", "kind": "custom", "ref": "billing.steps:Invoice"},
                {
                    "name": "prepare",
                    "kind": "custom",
                    "ref": "billing.steps:Prepare",
                    "after": ["account", "invoice"],
                },
            ],
        }
    )


def saga_spec() -> WorkflowSpec:
    """reserve -> authorize -> notify -> capture; reserve and authorize declare callbacks,
    notify cannot be undone."""
    return WorkflowSpec.from_dict(
        {
            "workflow": "checkout",
            "version": "v1",
            "triggers": [{"name": "go", "type": "manual"}],
            "steps": [
                {
                    "name": "reserve",
                    "kind": "custom",
                    "ref": "shop.steps:Reserve",
                    "compensate": {"ref": "shop.steps:Release"},
                },
                {
                    "name": "authorize",
                    "kind": "custom",
                    "ref": "shop.steps:Authorize",
                    "compensate": {"ref": "shop.steps:Void"},
                },
                {
                    "name": "notify",
                    "kind": "custom",
                    "ref": "shop.steps:Notify",
                    "compensatable": False,
                },
                {"name": "capture", "kind": "custom", "ref": "shop.steps:Capture"},
            ],
            "transitions": [
                {"from": "reserve", "on": "ok", "to": "authorize"},
                {"from": "authorize", "on": "ok", "to": "notify"},
                {"from": "notify", "on": "ok", "to": "capture"},
                {"from": "capture", "on": "ok", "to": "complete"},
            ],
        }
    )


def recovery(
    *, compensate: bool = False, compensatable: bool = True, irreversible: bool = False
) -> dict[str, Any]:
    """The recovery policy the planner persists with a custom step's runnables."""
    return {"irreversible": irreversible, "compensatable": compensatable, "compensate": compensate}


SAGA_POLICY = {
    "reserve": recovery(compensate=True),
    "authorize": recovery(compensate=True),
    "notify": recovery(compensatable=False),
    "capture": recovery(),
}


class Harness:
    """One run and its queue; each method writes through the aggregates' own commands."""

    def __init__(
        self,
        spec: WorkflowSpec | None = None,
        *,
        workflow: str = "billing",
        runtime_spec: bool = False,
    ) -> None:
        self.spec = spec
        self.run = WorkflowRun.start(
            run_id=RUN_ID,
            workflow=spec.workflow if spec else workflow,
            trigger="go",
            input={"invoice_id": "inv-1"},
            queue="default",
            now=T0,
            definition_fingerprint=spec.fingerprint if spec else "f" * 64,
            definition_version="v1",
            spec=spec.to_dict() if spec is not None and runtime_spec else None,
        )
        self.queue = DispatchQueue.open("default", now=T0)

    def plan(
        self,
        step: str,
        attempt: int = 1,
        *,
        at: datetime = T0,
        input: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        key = runnable_key(self.run.id, step, attempt)
        runnable = Runnable(
            runnable_key=key,
            step=step,
            attempt_number=attempt,
            input=input if input is not None else {"invoice_id": "inv-1"},
            visible_at=at,
            queue="default",
            **extra,
        )
        self.run.plan([runnable], now=T0)
        return key

    def schedule(self, key: str) -> str:
        planned = self.run.planned[key]
        self.queue.schedule(
            run_id=self.run.id,
            runnable_key=key,
            step=planned["step"],
            attempt_number=planned["attempt_number"],
            visible_at=planned["visible_at"],
            now=T0,
        )
        return key

    def dispatch(self, step: str, attempt: int = 1, *, at: datetime = T0, **extra: Any) -> str:
        return self.schedule(self.plan(step, attempt, at=at, **extra))

    def claim(self, key: str, *, at: datetime = T0, claim_id: str = "c1") -> None:
        self.queue.claim(
            key,
            claim_id=claim_id,
            claim_token_hash=hash_claim_token(TOKEN),
            owner_id="worker-1",
            lease_for=LEASE,
            now=at,
        )

    def complete(
        self, key: str, result: dict[str, Any] | None = None, *, at: datetime = T0
    ) -> None:
        self.queue.complete(
            key,
            claim_id="c1",
            claim_token_hash=hash_claim_token(TOKEN),
            result=result or {},
            now=at,
        )

    def fail_with_retry(self, key: str, *, retry_at: datetime, at: datetime = T0) -> str:
        """Fail the claimed attempt and schedule its retry, as the engine does."""
        planned = self.run.planned[key]
        retry_key = runnable_key(self.run.id, planned["step"], planned["attempt_number"] + 1)
        error = {"code": "boom", "message": "gateway timeout", "attempt": 1, "retryable": True}
        self.queue.fail(
            key,
            claim_id="c1",
            claim_token_hash=hash_claim_token(TOKEN),
            error=error,
            now=at,
            retry_runnable_key=retry_key,
            retry_visible_at=retry_at,
        )
        self.run.apply_result(
            key,
            outcome="error",
            error=error,
            transition={"retry_runnable_key": retry_key, "retry_visible_at": retry_at},
            now=at,
        )
        self.run.plan(
            [
                Runnable(
                    runnable_key=retry_key,
                    step=planned["step"],
                    attempt_number=planned["attempt_number"] + 1,
                    input=planned["input"],
                    visible_at=retry_at,
                    queue="default",
                    idempotency_key=planned["idempotency_key"],
                )
            ],
            now=at,
        )
        return retry_key

    def apply(
        self,
        key: str,
        *,
        outcome: str = "ok",
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        transition: dict[str, Any] | None = None,
        at: datetime = T0,
    ) -> None:
        """Apply a finished attempt to the run and drop it from the queue."""
        self.run.apply_result(
            key, outcome=outcome, result=result, error=error, transition=transition, now=at
        )
        if self.queue.attempt(key) is not None:
            self.queue.mark_applied(key, now=at)

    def step_ok(
        self,
        step: str,
        route: str | None,
        *,
        result: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """Run ``step`` through claim, completion and apply, taking edge ``route``."""
        key = self.dispatch(step, **extra)
        self.claim(key)
        self.complete(key, result)
        self.apply(key, result=result, transition=_route(route))
        return key

    def step_failed(self, step: str, **extra: Any) -> str:
        """Run ``step`` to a final error with no route: the failure that starts a rollback."""
        key = self.dispatch(step, **extra)
        self.claim(key)
        self.complete(key)
        self.apply(key, outcome="error", error={"code": "declined", "card": "4242"})
        return key

    def compensate(self, step: str, failed: str, *, at: datetime = T0) -> str:
        """Plan and schedule the callback undoing ``step`` after ``failed`` failed, as the
        planner does: ``compensate:<step>``, its input the undone step and the failure."""
        undone = runnable_key(self.run.id, step, 1)
        failure = {
            "code": "step_failed",
            "step": failed,
            "runnable_key": runnable_key(self.run.id, failed, 1),
            "reason": {"code": "declined", "card": "4242"},
        }
        return self.dispatch(
            f"compensate:{step}",
            at=at,
            input={"step": {"name": step, "runnable_key": undone}, "failure": failure},
            compensation={"step": step, "runnable_key": undone},
        )

    def callback(self, key: str, *, outcome: str = "ok") -> None:
        """Run a planned callback to its final ``outcome``."""
        self.claim(key)
        self.complete(key)
        error = {"code": "step_error"} if outcome == "error" else None
        self.apply(key, outcome=outcome, error=error)

    def saga_forward(self, *steps: str) -> None:
        """Complete ``steps`` of `saga_spec` in order, each with its persisted policy."""
        for step in steps:
            self.step_ok(step, None, recovery=SAGA_POLICY[step])

    def rolling_back(self) -> str:
        """`saga_spec` up to capture's failure, with authorize's callback scheduled."""
        self.saga_forward("reserve", "authorize", "notify")
        self.step_failed("capture", recovery=SAGA_POLICY["capture"])
        return self.compensate("authorize", "capture")

    def schedule_dynamic(
        self,
        *nodes: str,
        origin_step: str = "load",
        edges: list[dict[str, Any]] | None = None,
        key: str = "fanout",
    ) -> list[str]:
        """Record scheduled dynamic work from ``origin_step`` and plan one runnable per node,
        as `schedule_dynamic_work` does."""
        origin = {
            "runnable_key": runnable_key(self.run.id, origin_step, 1),
            "step": origin_step,
            "attempt": 1,
        }
        self.run.record_dynamic_work(
            dynamic_key=key,
            origin=origin,
            nodes=[
                {"id": n, "action": "chat.deliver", "input": {"chat": n}, "metadata": {"n": n}}
                for n in nodes
            ],
            edges=edges or [],
            metadata={"team": "ops"},
            reason="runtime_fanout",
            status="scheduled",
            now=T0,
        )
        return [
            self.dispatch(
                n,
                input={"chat": n},
                action="chat.deliver",
                recovery=recovery(),
                dynamic={"dynamic_key": key, "origin": origin, "max_attempts": 1},
            )
            for n in nodes
        ]

    def snapshot(self, now: datetime = T0, **options: Any) -> RunSnapshot:
        return build_run_snapshot(
            self.run,
            self.queue.attempts_of(self.run.id),
            now=now,
            spec=self.spec,
            **options,
        )


def _route(edge_id: str | None) -> dict[str, Any] | None:
    if edge_id is None:
        return None
    parts = edge_id.split(":")
    return {"from": parts[0], "on": parts[1], "to": parts[2], "edge_id": edge_id}


LATER = T0 + timedelta(minutes=5)


def _claimed(h: Harness) -> str:
    key = h.dispatch("load")
    h.claim(key)
    return key


def _retrying(h: Harness) -> None:
    h.fail_with_retry(_claimed(h), retry_at=LATER)


def _completed(h: Harness) -> None:
    h.complete(_claimed(h), {"loaded": True})


def _failed_unapplied(h: Harness) -> None:
    key = _claimed(h)
    h.queue.fail(
        key, claim_id="c1", claim_token_hash=hash_claim_token(TOKEN), error={"code": "x"}, now=T0
    )


def _paused(h: Harness) -> None:
    h.run.pause("approve", kind=ManualKind.APPROVAL, now=T0, metadata={"ticket": "T-1"})


def _terminal(h: Harness) -> None:
    h.run.end(TerminalStatus.FAILED, now=T0, error={"code": "boom", "step": "load"})


SCENARIOS: dict[SnapshotReason, tuple[Callable[[Harness], object], datetime]] = {
    SnapshotReason.TERMINAL: (_terminal, T0),
    SnapshotReason.MANUAL_INTERVENTION_REQUIRED: (_paused, T0),
    SnapshotReason.COMPLETED_RESULT_PENDING_APPLY: (_completed, T0),
    SnapshotReason.PLANNED_DISPATCH_PENDING_SCHEDULE: (lambda h: h.plan("load"), T0),
    SnapshotReason.EXPIRED_CLAIM: (_claimed, T0 + LEASE),
    SnapshotReason.ATTEMPT_VISIBLE: (lambda h: h.dispatch("load"), T0),
    SnapshotReason.ATTEMPT_CLAIMED: (_claimed, T0),
    SnapshotReason.DEFERRED_CONTINUATION: (
        lambda h: h.dispatch("load", at=LATER, deferred={"reason": "rate_limited"}),
        T0,
    ),
    SnapshotReason.WAITING_FOR_RETRY: (_retrying, T0),
    SnapshotReason.ATTEMPT_SCHEDULED_FOR_LATER: (lambda h: h.dispatch("load", at=LATER), T0),
    SnapshotReason.IDLE: (lambda h: h.step_ok("load", None), T0),
    SnapshotReason.RUN_STARTED: (lambda h: None, T0),
    SnapshotReason.WAITING_FOR_DISPATCH: (_failed_unapplied, T0),
}
"""For each reason, how to bring a fresh run there, and when to read it."""


def snapshot_for(reason: SnapshotReason, **options: Any) -> RunSnapshot:
    setup, now = SCENARIOS[reason]
    h = Harness()
    setup(h)
    return h.snapshot(now, **options)
