"""The command envelope: every control reaches a run as a `Signal` through `apply_signal`.

A signal carries its type, its target and its payload, plus metadata, the time it occurred
and an optional idempotency key. The same key delivered twice is one command: the second
delivery returns the first's result and writes no second receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import JSONDict, ManualAction, parse_run_id
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime._controls import cancel_run, resolve_manual_run
from squidmesh_es.workflow import JSONValue, Workflow

if TYPE_CHECKING:
    from squidmesh_es.read_model import RunSnapshot
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["Signal", "SignalType", "apply_signal"]


class SignalType(StrEnum):
    """The commands a run accepts, named as the spec names their receipts."""

    START_RUN = "start_run"
    APPROVE_RUN = "approve_run"
    REJECT_RUN = "reject_run"
    RESUME_RUN = "resume_run"
    CANCEL_RUN = "cancel_run"


_ACTIONS = {
    SignalType.APPROVE_RUN: ManualAction.APPROVED,
    SignalType.REJECT_RUN: ManualAction.REJECTED,
    SignalType.RESUME_RUN: ManualAction.RESUMED,
}


@dataclass(frozen=True)
class Signal:
    """One command for the runtime: build it with a constructor, deliver it with `apply_signal`."""

    kind: SignalType
    run_id: UUID | None = None
    workflow: type[Workflow] | None = None
    trigger: str | None = None
    payload: Mapping[str, JSONValue] = field(default_factory=dict)
    actor: str | None = None
    comment: str | None = None
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    occurred_at: datetime | None = None
    idempotency_key: str | None = None

    @classmethod
    def start_run(
        cls,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue] | None = None,
        *,
        trigger: str | None = None,
        run_id: UUID | str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Signal:
        """Start a run of ``workflow``."""
        return cls(
            SignalType.START_RUN,
            run_id=parse_run_id(run_id) if run_id is not None else None,
            workflow=workflow,
            trigger=trigger,
            payload=dict(payload or {}),
            metadata=dict(metadata or {}),
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
        )

    @classmethod
    def approve_run(cls, run_id: UUID | str, **attributes: object) -> Signal:
        """Approve the approval step the run is paused at."""
        return cls._control(SignalType.APPROVE_RUN, run_id, attributes)

    @classmethod
    def reject_run(cls, run_id: UUID | str, **attributes: object) -> Signal:
        """Reject the approval step the run is paused at."""
        return cls._control(SignalType.REJECT_RUN, run_id, attributes)

    @classmethod
    def resume_run(cls, run_id: UUID | str, **attributes: object) -> Signal:
        """Resume the pause step the run is paused at."""
        return cls._control(SignalType.RESUME_RUN, run_id, attributes)

    @classmethod
    def cancel_run(cls, run_id: UUID | str, **attributes: object) -> Signal:
        """Cancel the run (``comment`` is the reason)."""
        return cls._control(SignalType.CANCEL_RUN, run_id, attributes)

    @classmethod
    def _control(
        cls, kind: SignalType, run_id: UUID | str, attributes: dict[str, object]
    ) -> Signal:
        allowed = {"actor", "comment", "metadata", "occurred_at", "idempotency_key"}
        unknown = sorted(set(attributes) - allowed)
        if unknown:
            raise InvalidArgument("signal", f"unknown attributes {unknown} for {kind.value}")
        return cls(kind, run_id=parse_run_id(run_id), **attributes)  # type: ignore[arg-type]


def apply_signal(mesh: SquidMesh, signal: Signal) -> RunSnapshot:
    """Route ``signal`` to its command; each command commits its receipt with its effect.

    Raises:
        InvalidArgument: the signal lacks what its type needs.
        and whatever the routed command raises.
    """
    now = mesh.now(signal.occurred_at)
    if signal.kind is SignalType.START_RUN:
        if signal.workflow is None:
            raise InvalidArgument("signal", "start_run needs a workflow")
        return mesh.start(
            signal.workflow,
            signal.payload,
            trigger=signal.trigger,
            run_id=signal.run_id,
            idempotency_key=signal.idempotency_key,
            metadata=signal.metadata,
            now=now,
        )
    if signal.run_id is None:
        raise InvalidArgument("signal", f"{signal.kind.value} needs a run_id")
    metadata: JSONDict = dict(signal.metadata)
    if signal.kind is SignalType.CANCEL_RUN:
        run = cancel_run(
            mesh,
            signal.run_id,
            actor=signal.actor,
            reason=signal.comment,
            idempotency_key=signal.idempotency_key,
            now=now,
        )
    else:
        run = resolve_manual_run(
            mesh,
            signal.run_id,
            _ACTIONS[signal.kind],
            actor=signal.actor,
            comment=signal.comment,
            metadata=metadata,
            idempotency_key=signal.idempotency_key,
            now=now,
        )
    return mesh.inspect_run(run.run_id, now=now)
