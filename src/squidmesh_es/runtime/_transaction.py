"""One transaction for a host's domain change and the runs it starts: no outbox needed.

A host whose application is (or subclasses) `SquidMesh` keeps its own aggregates in the same
event store. Inside ``mesh.transaction()`` it adds the aggregates it changed, starts runs and
resolves or cancels existing ones; on exit everything commits in one ``save``. If any of
them moved on meanwhile, `Conflict` is raised and nothing at all was written: reload and
decide again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from squidmesh_es.domain import DispatchQueue, WorkflowRun, parse_run_id
from squidmesh_es.errors import Conflict, RunIdTaken
from squidmesh_es.runtime._controls import decide_cancel, decide_manual
from squidmesh_es.runtime._execution import RACE_SIGNS, Settled, after_commit, run_moved
from squidmesh_es.runtime._signals import MANUAL_ACTION_OF, Signal, SignalType
from squidmesh_es.runtime._starting import build_request, prepare_start
from squidmesh_es.workflow import JSONValue, Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["Transaction", "transaction"]


class Transaction:
    """Aggregates and run starts that commit together, or not at all."""

    def __init__(self, mesh: SquidMesh) -> None:
        self.mesh = mesh
        self._aggregates: dict[UUID, Any] = {}
        self._queues: dict[str, DispatchQueue] = {}
        self._effects: list[Settled] = []
        self.committed = False

    def add(self, *aggregates: Any) -> None:
        """Include the host's changed aggregates in the commit."""
        for aggregate in aggregates:
            self._aggregates[aggregate.id] = aggregate

    def start(
        self,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue] | None = None,
        *,
        trigger: str | None = None,
        run_id: UUID | str | None = None,
        queue: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        now: datetime | None = None,
    ) -> UUID:
        """Start a run as part of this transaction; returns its id (nothing is written yet).

        The same checks as `SquidMesh.start` apply, before anything is decided. A start
        repeated in the same transaction returns the same id.

        Raises:
            RunIdTaken: the run id belongs to a different request, here or in the journal.
            Conflict: a twin started the run while this transaction decided; nothing was
                written: reload and decide again.
        """
        at = self.mesh.now(now)
        request = build_request(
            self.mesh,
            workflow,
            payload or {},
            trigger=trigger,
            run_id=run_id,
            queue=queue,
            idempotency_key=idempotency_key,
            metadata=metadata,
            now=at,
        )
        held = self._aggregates.get(request.run_id)
        if isinstance(held, WorkflowRun):
            # Started earlier in this transaction: the journal does not know it yet.
            if request.matches(held):
                return held.run_id
            raise RunIdTaken(request.run_id, "a different start request started it")
        try:
            prepared = prepare_start(
                self.mesh, request, now=at, queue=self._queues.get(request.dispatch_queue)
            )
        except RACE_SIGNS as exc:
            if run_moved(self.mesh, request.run_id, None):
                raise Conflict(
                    "a twin started the run meanwhile", run_id=str(request.run_id)
                ) from exc
            raise
        if prepared.queue is not None and prepared.settled is not None:
            self._queues[request.dispatch_queue] = prepared.queue
            self._effects.append(prepared.settled)
            self.add(prepared.run)
        return prepared.run.run_id

    def approve(self, run_id: UUID | str, **control: Any) -> None:
        """Approve the run's approval boundary as part of this transaction.

        Takes the keywords of `SquidMesh.approve` (``actor``, ``comment``, ``metadata``,
        ``idempotency_key``, ``now``) and applies the same checks at once: a refusal raises
        here, before anything is written.
        """
        self._control(Signal.approve_run, run_id, control)

    def reject(self, run_id: UUID | str, **control: Any) -> None:
        """Reject the run's approval boundary as part of this transaction (see `approve`)."""
        self._control(Signal.reject_run, run_id, control)

    def resume(self, run_id: UUID | str, **control: Any) -> None:
        """Resume the run's pause boundary as part of this transaction (see `approve`)."""
        self._control(Signal.resume_run, run_id, control)

    def cancel(self, run_id: UUID | str, **control: Any) -> None:
        """Cancel the run as part of this transaction (keywords of `SquidMesh.cancel`)."""
        if "reason" in control:
            control["comment"] = control.pop("reason")
        self._control(Signal.cancel_run, run_id, control)

    def _control(
        self, build: Callable[..., Signal], run_id: UUID | str, control: dict[str, Any]
    ) -> None:
        """Check the control as its signal would be checked, then decide it on held state."""
        if "now" in control:
            control["occurred_at"] = control.pop("now")
        signal = build(run_id, **control)
        assert signal.run_id is not None
        run, queue = self._run_and_queue(signal.run_id)
        seen = run.version
        now = self.mesh.now(signal.occurred_at)
        try:
            settled = self._decide(signal, run, queue, now)
        except RACE_SIGNS as exc:
            if run.run_id not in self._aggregates and run_moved(self.mesh, run.run_id, seen):
                raise Conflict("the run moved meanwhile", run_id=str(run.run_id)) from exc
            raise
        self._include(run, queue, settled)

    def _decide(
        self, signal: Signal, run: WorkflowRun, queue: DispatchQueue, now: datetime
    ) -> Settled | None:
        if signal.kind is SignalType.CANCEL_RUN:
            return decide_cancel(
                run,
                queue,
                actor=signal.actor,
                reason=signal.comment,
                metadata=dict(signal.metadata),
                idempotency_key=signal.idempotency_key,
                now=now,
            )
        return decide_manual(
            self.mesh,
            run,
            queue,
            MANUAL_ACTION_OF[signal.kind],
            actor=signal.actor,
            comment=signal.comment,
            metadata=dict(signal.metadata),
            idempotency_key=signal.idempotency_key,
            now=now,
        )

    def _run_and_queue(self, run_id: UUID | str) -> tuple[WorkflowRun, DispatchQueue]:
        """The run and its queue as this transaction already holds them, else loaded."""
        uid = parse_run_id(run_id)
        held = self._aggregates.get(uid)
        run = held if isinstance(held, WorkflowRun) else self.mesh.get_run(uid)
        queue = self._queues.get(run.dispatch_queue) or self.mesh.get_queue(run.dispatch_queue)
        return run, queue

    def _include(self, run: WorkflowRun, queue: DispatchQueue, settled: Settled | None) -> None:
        if settled is None:
            return  # a duplicate delivery: nothing to write
        self.add(run)
        self._queues[queue.queue] = queue
        self._effects.append(settled)

    def commit(self) -> None:
        """Save everything in one transaction, then send the start's live hints.

        Raises:
            Conflict: an aggregate moved on since it was read; nothing was written.
        """
        self.mesh.save(*self._aggregates.values(), *self._queues.values())
        self.committed = True
        for settled in self._effects:
            after_commit(self.mesh, settled)


@contextmanager
def transaction(mesh: SquidMesh) -> Iterator[Transaction]:
    """Collect changes in the block and commit them on a normal exit."""
    unit = Transaction(mesh)
    yield unit
    unit.commit()
