"""The command envelope: every control reaches a run as a `Signal` through `apply_signal`.

A signal carries its type, its target and its payload, plus metadata, the time it occurred
and an optional idempotency key. The same key delivered twice is one command: the second
delivery returns the first's result and writes no second receipt.

A signal is a frozen pydantic model, so a host can carry it as JSON (a broker message, a
web hook body): ``signal.model_dump_json()`` on one side, ``Signal.model_validate_json``
on the other. It names its workflow; the runtime applying it finds the class by that name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import FrozenInstanceError
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from squidmesh_es.domain import JSONDict, ManualAction
from squidmesh_es.errors import (
    InvalidArgument,
    InvalidRunId,
    InvalidScheduleIdentity,
    InvalidScheduleIntendedWindow,
    InvalidScheduleSignalId,
    InvalidSignal,
    Issue,
    SquidMeshError,
    WorkflowNotRegistered,
)
from squidmesh_es.runtime._controls import cancel_run, resolve_manual_run
from squidmesh_es.runtime._cron import IntendedWindow
from squidmesh_es.runtime._lineage import replay_run
from squidmesh_es.runtime._telemetry import control_span
from squidmesh_es.workflow import JSONValue, Workflow, is_json_value

if TYPE_CHECKING:
    from squidmesh_es.read_model import RunSnapshot
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["MANUAL_ACTION_OF", "Signal", "SignalType", "apply_signal"]


class SignalType(StrEnum):
    """The commands a run accepts, named as the spec names their receipts."""

    START_RUN = "start_run"
    START_CRON = "start_cron"
    APPROVE_RUN = "approve_run"
    REJECT_RUN = "reject_run"
    RESUME_RUN = "resume_run"
    CANCEL_RUN = "cancel_run"
    REPLAY_RUN = "replay_run"


MANUAL_ACTION_OF = {
    SignalType.APPROVE_RUN: ManualAction.APPROVED,
    SignalType.REJECT_RUN: ManualAction.REJECTED,
    SignalType.RESUME_RUN: ManualAction.RESUMED,
}
"""The manual resolution each manual-control signal asks for."""

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

_CONTROL_ATTRIBUTES = frozenset({"actor", "comment", "metadata", "occurred_at", "idempotency_key"})
"""What the control constructors (approve, reject, resume, cancel) accept as keywords."""


class Signal(BaseModel):
    """One command for the runtime: build it with a constructor, deliver it with `apply_signal`.

    Each field's shape is checked when the signal is built or read from JSON: ``run_id`` a
    UUID, ``occurred_at`` timezone-aware, ``payload`` and ``metadata`` JSON objects, text
    fields strings, ``idempotency_key`` non-blank. Whether the fields fit the type (a start
    names a workflow, a control a run, nothing the type ignores is set) is checked when the
    signal is applied, so it is refused alike however it was made.

    ``model_dump_json`` and ``model_validate_json`` round-trip every signal. The workflow
    travels by name: a constructor given the class keeps it with the signal (it is not
    serialized), so that signal needs no registration, as ``mesh.start(cls)`` needs none;
    a signal read from JSON needs its workflow registered where it is applied.

    Raises (when built or read):
        InvalidRunId: ``run_id`` is not a UUID.
        InvalidScheduleIdentity: on a ``start_cron`` signal, a malformed
            ``idempotency_key``, ``signal_id`` (`InvalidScheduleSignalId`) or
            ``intended_window`` (`InvalidScheduleIntendedWindow`), as ``start_cron`` says.
        InvalidSignal: any other field has the wrong shape, an unknown field is set, or
            the text given to ``model_validate_json`` is not JSON; ``issues`` names each.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SignalType
    """The command."""
    run_id: UUID | None = None
    """The run a control or replay is for; a start's own run id (default ``None``)."""
    workflow: StrictStr | None = None
    """Name of the workflow a start runs (default ``None``); constructors take the class too."""
    trigger: StrictStr | None = None
    """The trigger a start uses (default ``None``: the workflow's only trigger)."""
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    """A start's input (default empty)."""
    actor: StrictStr | None = None
    """Who sent a control, for its receipt (default ``None``)."""
    comment: StrictStr | None = None
    """Free text for a control's receipt; a cancel's reason (default ``None``)."""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    """Kept on the receipt, sensitive keys redacted (default empty)."""
    occurred_at: AwareDatetime | None = None
    """When the command happened (default ``None``: the runtime's clock when applied)."""
    idempotency_key: StrictStr | None = None
    """The same key delivered again is the same command (default ``None``)."""
    signal_id: StrictStr | None = None
    """``start_cron``: the scheduler's id of the activation (default ``None``)."""
    intended_window: dict[StrictStr, StrictStr] | None = None
    """``start_cron``: the window the activation stands for, bounds as ISO-8601 (default
    ``None``); bounds given as datetimes are written as ISO-8601."""
    allow_irreversible: StrictBool = False
    """``replay_run``: replay over irreversible completed steps; only ``True`` itself lifts
    the guard (default ``False``)."""

    _workflow_class: type[Workflow] | None = PrivateAttr(default=None)
    """The class a constructor was given, so applying needs no registry; never serialized."""

    def __init__(self, kind: SignalType | str | None = None, /, **fields: object) -> None:
        """Build a signal; the type may come first, as the constructors pass it.

        Raises:
            InvalidRunId, InvalidScheduleIdentity, InvalidSignal: as the class says.
        """
        if kind is not None:
            if "kind" in fields:
                raise TypeError("Signal() got multiple values for 'kind'")
            fields["kind"] = kind
        super().__init__(**fields)

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_as_our_errors(
        cls, data: object, handler: ModelWrapValidatorHandler[Signal]
    ) -> Signal:
        """Validate, keeping a given workflow class aside and turning refusals into ours.

        Every way in (the constructors, ``Signal(...)``, ``model_validate`` and the JSON
        reader) passes here, so pydantic's ``ValidationError`` never reaches a caller.
        """
        carried: type[Workflow] | None = None
        if isinstance(data, Mapping) and _is_workflow_class(data.get("workflow")):
            carried = data["workflow"]
            data = {**data, "workflow": carried.name}
        try:
            signal = handler(data)
        except ValidationError as exc:
            # ``from None``: the library's error quotes the input, metadata values included.
            raise _refusal(exc, data) from None
        if carried is not None:
            signal._workflow_class = carried
        return signal

    @field_validator("payload", "metadata", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        """Refuse what JSON would not bring back as it was: tuples, sets, bytes, NaN, times."""
        if not isinstance(value, Mapping):
            return value  # pydantic refuses it as ``dict_type``
        copied = dict(value)
        if not is_json_value(copied):
            raise PydanticCustomError(
                "json_value", "must be a JSON object: string keys, values that survive JSON"
            )
        return copied

    @field_validator("intended_window", mode="before")
    @classmethod
    def _window_as_text(cls, value: object) -> object:
        """Write datetime bounds as ISO-8601, as JSON carries them; ``start_cron`` checks them."""
        if not isinstance(value, Mapping):
            return value
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in value.items()}

    @field_validator("idempotency_key", "actor")
    @classmethod
    def _non_blank(cls, value: str | None) -> str | None:
        """Refuse a blank key (it would make unrelated commands one command) or actor.

        A blank actor would record a decision nobody made; leave it out (``None``) instead.
        """
        if value is not None and not value.strip():
            raise PydanticCustomError("blank_string", "must be a non-blank string")
        return value

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        **options: Any,  # pydantic's keyword options, which vary across its versions
    ) -> Self:
        """Read a signal from its JSON form, as ``model_dump_json`` writes it.

        Raises:
            InvalidSignal: the text is not JSON, or a field is malformed.
            InvalidRunId, InvalidScheduleIdentity: as the class says.
        """
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:  # not JSON at all: it never reached the fields
            raise _refusal(exc, None) from None

    def __eq__(self, other: object) -> bool:
        """Whether both carry the same command.

        The class a constructor was given is a convenience of this process, not part of
        the command: a signal read back from its JSON equals the one that was sent.
        """
        if not isinstance(other, Signal):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __setattr__(self, name: str, value: object) -> None:
        """Refuse changing a field, as a frozen dataclass does: a signal is a value."""
        if name in self.__private_attributes__:
            super().__setattr__(name, value)
            return
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        """Refuse deleting a field, as a frozen dataclass does."""
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    @classmethod
    def start_run(
        cls,
        workflow: type[Workflow] | str,
        payload: Mapping[str, JSONValue] | None = None,
        *,
        trigger: str | None = None,
        run_id: UUID | str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        occurred_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Signal:
        """Start a run of ``workflow`` (its class, or its registered name)."""
        return cls(
            SignalType.START_RUN,
            run_id=run_id,
            workflow=workflow,
            trigger=trigger,
            payload=payload or {},
            metadata=metadata or {},
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
        )

    @classmethod
    def start_cron(
        cls,
        workflow: type[Workflow] | str,
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
            payload=payload or {},
            metadata=metadata or {},
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
            signal_id=signal_id,
            intended_window=intended_window,
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
            run_id=run_id,
            actor=actor,
            comment=comment,
            metadata=metadata or {},
            occurred_at=occurred_at,
            idempotency_key=idempotency_key,
            allow_irreversible=allow_irreversible is True,
        )

    @classmethod
    def _control(
        cls, kind: SignalType, run_id: UUID | str, attributes: dict[str, object]
    ) -> Signal:
        unknown = sorted(set(attributes) - _CONTROL_ATTRIBUTES)
        if unknown:
            raise InvalidSignal(
                [
                    Issue((name,), "extra_forbidden", f"{kind.value} does not take it")
                    for name in unknown
                ]
            )
        return cls(kind, run_id=run_id, **attributes)


def apply_signal(mesh: SquidMesh, signal: Signal) -> RunSnapshot:
    """Route ``signal`` to its command; each command commits its receipt with its effect.

    Starts go through ``start``, cron starts through ``start_cron`` and replays through
    the replay command, so a signal and the named method behave alike. A cron activation
    that repeats an earlier one returns the snapshot of the run the first delivery
    started, whether its trigger returns existing runs or skips duplicates; call
    ``start_cron`` to learn which it was.

    Raises:
        InvalidSignal: ``signal`` is not a `Signal`.
        InvalidArgument: the signal lacks what its type needs, or sets a field its type
            does not take.
        WorkflowNotRegistered: a start names a workflow this runtime has not registered
            (and the signal carries no class); nothing is written.
        PayloadTooLarge: the signal's payload or metadata is over ``mesh.limits``.
        and whatever the routed command raises.
    """
    if not isinstance(signal, Signal):
        message = "apply_signal takes a Signal (Signal.start_run, Signal.approve_run, ...)"
        raise InvalidSignal([Issue((), "not_a_signal", message)])
    with control_span(signal.kind.value, signal.run_id, lambda: _trace_of(mesh, signal.run_id)):
        return _route(mesh, signal)


def _trace_of(mesh: SquidMesh, run_id: UUID | str | None) -> JSONDict | None:
    """The stored trace context of the run a control is about, for its span's link."""
    try:
        return None if run_id is None else mesh.get_run(run_id).trace_context
    except SquidMeshError:
        return None


def _route(mesh: SquidMesh, signal: Signal) -> RunSnapshot:
    _check_fields(signal)
    mesh.limits.measure_request({"payload": signal.payload, "metadata": signal.metadata})
    now = mesh.now(signal.occurred_at)
    if signal.kind is SignalType.START_RUN:
        return mesh.start(
            _workflow_of(mesh, signal),
            signal.payload,
            trigger=signal.trigger,
            run_id=signal.run_id,
            idempotency_key=signal.idempotency_key,
            metadata=signal.metadata,
            now=now,
        )
    if signal.kind is SignalType.START_CRON:
        if signal.trigger is None:
            raise InvalidArgument("signal", "start_cron needs a workflow and a trigger")
        return mesh.start_cron(
            _workflow_of(mesh, signal),
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
            MANUAL_ACTION_OF[signal.kind],
            actor=signal.actor,
            comment=signal.comment,
            metadata=metadata,
            idempotency_key=signal.idempotency_key,
            now=now,
        )
    return mesh.inspect_run(run.run_id, now=now)


def _workflow_of(mesh: SquidMesh, signal: Signal) -> type[Workflow]:
    """The class a start runs: the one the signal was built with, else the registered one.

    Raises:
        InvalidArgument: the signal names no workflow.
        WorkflowNotRegistered: no class carried and none registered under the name.
    """
    if signal.workflow is None:
        raise InvalidArgument("signal", f"{signal.kind.value} needs a workflow")
    if signal._workflow_class is not None:
        return signal._workflow_class
    workflow = mesh.workflows.get(signal.workflow)
    if workflow is None:
        raise WorkflowNotRegistered(signal.workflow)
    return workflow


def _check_fields(signal: Signal) -> None:
    """Refuse a signal that sets fields its type would silently ignore."""
    takes = _ENVELOPE | _TAKES[signal.kind]
    ignored = [
        name
        for name, info in Signal.model_fields.items()
        if name not in takes
        and getattr(signal, name) != info.get_default(call_default_factory=True)
    ]
    if ignored:
        raise InvalidArgument("signal", f"{signal.kind.value} does not take {sorted(ignored)}")


def _is_workflow_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Workflow) and "name" in vars(value)


def _refusal(exc: ValidationError, data: object) -> SquidMeshError:
    """Our error for pydantic's: the one a field has elsewhere in the API, else the issues.

    A bad run id is ``InvalidRunId``, as in every call that takes one; on a ``start_cron``
    signal the schedule fields raise what ``start_cron`` raises. Other problems are listed
    in one ``InvalidSignal``.
    """
    errors = exc.errors(include_url=False, include_context=False, include_input=True)
    by_field = {str(e["loc"][0]): e for e in reversed(errors) if e["loc"]}
    if "run_id" in by_field:
        return InvalidRunId()
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == SignalType.START_CRON:
        if "signal_id" in by_field:
            return InvalidScheduleSignalId(by_field["signal_id"]["msg"])
        if "intended_window" in by_field:
            return InvalidScheduleIntendedWindow(by_field["intended_window"]["msg"])
        if "idempotency_key" in by_field:
            return InvalidScheduleIdentity("idempotency_key", by_field["idempotency_key"]["msg"])
    return InvalidSignal([Issue(tuple(e["loc"]), e["type"], e["msg"]) for e in errors])
