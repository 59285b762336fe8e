"""The command envelope: every control reaches a run as a `Signal` through `apply_signal`.

A signal carries its type, its target and its payload, plus metadata, the time it occurred
and an optional idempotency key. The same key delivered twice is one command: the second
delivery returns the first's result and writes no second receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import JSONDict, ManualAction, parse_run_id
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime._controls import cancel_run, resolve_manual_run
from squidmesh_es.runtime._cron import IntendedWindow
from squidmesh_es.runtime._lineage import replay_run
from squidmesh_es.workflow import JSONValue, Workflow

if TYPE_CHECKING:
    from squidmesh_es.read_model import RunSnapshot
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["Signal", "SignalType", "apply_signal"]


class SignalType(StrEnum):
    """The commands a run accepts, named as the spec names their receipts."""

    START_RUN = "start_run"
    START_CRON = "start_cron"
    APPROVE_RUN = "approve_run"
    REJECT_RUN = "reject_run"
    RESUME_RUN = "resume_run"
    CANCEL_RUN = "cancel_run"
    REPLAY_RUN = "replay_run"


_ACTIONS = {
    SignalType.APPROVE_RUN: ManualAction.APPROVED,
    SignalType.REJECT_RUN: ManualAction.REJECTED,
    SignalType.RESUME_RUN: ManualAction.RESUMED,
}

_ENVELOPE = frozenset({"kind", "metadata", "occurred_at", "idempotency_key"})
"""Fields every signal may carry."""

_TAKES: dict[SignalType, frozenset[str]] = {
    SignalType.START_RUN: frozenset({"workflow", "trigger", "payload", "run_id"}),
    SignalType.START_CRON: frozenset(
        {"workflow", "trigger", "payload", "signal_id", "intended_window"}
    ),
    SignalType.APPROVE_RUN: frozenset({"run_id", "actor", "comment"}),
    SignalType.REJECT_RUN: frozenset({"run_id", "actor", "comment"}),
    SignalType.RESUME_RUN: frozenset({"run_id", "actor", "comment"}),
    SignalType.CANCEL_RUN: frozenset({"run_id", "actor", "comment"}),
    SignalType.REPLAY_RUN: frozenset({"run_id", "allow_irreversible", "actor", "comment"}),
}
"""The fields each type uses besides the envelope; a signal setting another is refused
rather than having it silently ignored."""


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
    signal_id: str | None = None
    """``start_cron``: the scheduler's id of the activation (default ``None``)."""
    intended_window: IntendedWindow | None = None
    """``start_cron``: the window the activation stands for (default ``None``)."""
    allow_irreversible: bool = False
    """``replay_run``: replay over irreversible completed steps (default ``False``)."""

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
    def start_cron(
        cls,
        workflow: type[Workflow],
        trigger: str,
        *,
        signal_id: str | None = None,
        intended_window: IntendedWindow | None = None,
        payload: Mapping[str, JSONValue] | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Signal:
        """Deliver one activation of ``workflow``'s cron ``trigger``, as ``start_cron`` does.

        The identity is checked when the signal is applied, against the trigger; without
        ``idempotency_key`` the duplicate key is the identity (the signal id, or one derived
        from a complete window). ``occurred_at`` becomes the schedule's ``received_at``.
        """
        return cls(
            SignalType.START_CRON,
            workflow=workflow,
            trigger=trigger,
            payload=dict(payload or {}),
            metadata=dict(metadata or {}),
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
            signal_id=signal_id,
            intended_window=dict(intended_window) if intended_window is not None else None,
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
    def replay_run(
        cls,
        run_id: UUID | str,
        *,
        allow_irreversible: bool = False,
        actor: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Signal:
        """Start a fresh run from ``run_id``'s trigger and input, as ``replay`` does.

        Only ``allow_irreversible=True`` itself lifts the unsafe-replay guard; any other
        value, truthy or not, is ``False``. The key defaults to ``replay_run:<run_id>`` when
        applied, so delivering this signal twice returns one new run.
        """
        return cls(
            SignalType.REPLAY_RUN,
            run_id=parse_run_id(run_id),
            actor=actor,
            comment=comment,
            metadata=dict(metadata or {}),
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
            allow_irreversible=allow_irreversible is True,
        )

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

    Starts go through ``start``, cron starts through ``start_cron`` and replays through
    the replay command, so a signal and the named method behave alike. A cron activation
    that repeats an earlier one returns the snapshot of the run the first delivery
    started, whether its trigger returns existing runs or skips duplicates; call
    ``start_cron`` to learn which it was.

    Raises:
        InvalidArgument: the signal lacks what its type needs, or sets a field its type
            does not take.
        and whatever the routed command raises.
    """
    _check_fields(signal)
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
    if signal.kind is SignalType.START_CRON:
        if signal.workflow is None or signal.trigger is None:
            raise InvalidArgument("signal", "start_cron needs a workflow and a trigger")
        return mesh.start_cron(
            signal.workflow,
            signal.trigger,
            signal_id=signal.signal_id,
            intended_window=signal.intended_window,
            payload=signal.payload,
            idempotency_key=signal.idempotency_key,
            metadata=signal.metadata,
            now=now,
        ).snapshot
    if signal.run_id is None:
        raise InvalidArgument("signal", f"{signal.kind.value} needs a run_id")
    metadata: JSONDict = dict(signal.metadata)
    if signal.kind is SignalType.REPLAY_RUN:
        run = replay_run(
            mesh,
            signal.run_id,
            allow_irreversible=signal.allow_irreversible,
            idempotency_key=signal.idempotency_key,
            actor=signal.actor,
            comment=signal.comment,
            metadata=metadata,
            now=now,
        )
    elif signal.kind is SignalType.CANCEL_RUN:
        run = cancel_run(
            mesh,
            signal.run_id,
            actor=signal.actor,
            reason=signal.comment,
            idempotency_key=signal.idempotency_key,
            metadata=metadata,
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


def _check_fields(signal: Signal) -> None:
    """Refuse a hand-built signal that sets fields its type would silently ignore."""
    takes = _ENVELOPE | _TAKES[signal.kind]
    ignored = []
    for spec in fields(signal):
        if spec.name in takes:
            continue
        default = spec.default if spec.default_factory is MISSING else spec.default_factory()
        if getattr(signal, spec.name) != default:
            ignored.append(spec.name)
    if ignored:
        raise InvalidArgument("signal", f"{signal.kind.value} does not take {sorted(ignored)}")
