"""The parts of a workflow spec: triggers, payload fields, steps and transitions.

Each part is a frozen dataclass whose `to_dict` gives its spec form. Optional fields are left
out of that form while they hold their default, so a feature added later does not change the
fingerprint of definitions that do not use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from squidmesh_es.workflow._conditions import Condition
from squidmesh_es.workflow._json import JSONObject, JSONValue, canonical_json
from squidmesh_es.workflow._mapping import InputBinding, place_output, select_input
from squidmesh_es.workflow._retry import NO_RETRY, RetryPolicy, require_timedelta, to_ms
from squidmesh_es.workflow._vocab import (
    COMPLETE,
    MANUAL_STEP_KINDS,
    CronIdempotency,
    DefaultFactory,
    Escalation,
    LogLevel,
    Outcome,
    PayloadType,
    Recovery,
    StepKind,
    TriggerType,
)


@dataclass(frozen=True)
class TriggerSpec:
    """An entry point of a workflow: its name and how runs are started through it."""

    name: str
    type: TriggerType
    expression: str | None = None
    """Cron expression (five fields, or an alias such as ``@daily``); cron triggers only."""
    timezone: str | None = None
    """IANA timezone the expression is read in; cron triggers only."""
    idempotency: CronIdempotency | None = None
    """What a duplicate scheduled activation does; `None` starts a run for every delivery."""

    def to_dict(self) -> JSONObject:
        """The spec form; cron fields appear only when set."""
        data: JSONObject = {"name": self.name, "type": self.type.value}
        if self.expression is not None:
            data["expression"] = self.expression
        if self.timezone is not None:
            data["timezone"] = self.timezone
        if self.idempotency is not None:
            data["idempotency"] = self.idempotency.value
        return data


@dataclass(frozen=True)
class PayloadField:
    """One field of the payload contract, described as data so specs can carry it."""

    name: str
    type: PayloadType
    required: bool = True
    nullable: bool = False
    """Whether ``null`` is accepted."""
    default: JSONValue = None
    """Used when an optional field is absent (and `default_factory` is `None`)."""
    default_factory: DefaultFactory | None = None
    """A default computed when the run is created, such as today's date."""

    def to_dict(self) -> JSONObject:
        """The spec form; a default appears only on optional fields."""
        data: JSONObject = {
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
            "nullable": self.nullable,
        }
        if self.default_factory is not None:
            data["default_factory"] = self.default_factory.value
        elif not self.required:
            data["default"] = self.default
        return data


@dataclass(frozen=True)
class Deadline:
    """A service-level target for a step: evidence for operators, never a cancellation."""

    within: timedelta
    """How long after the step is scheduled it is due."""
    due_soon: timedelta | None = None
    """How long before the due time the step counts as due soon."""
    escalation: Escalation | None = None
    """Who a missed deadline is for; the host delivers the escalation."""

    def __post_init__(self) -> None:
        require_timedelta(self.within, "deadline within")
        if self.due_soon is not None:
            require_timedelta(self.due_soon, "deadline due_soon")
        if self.escalation is not None and not isinstance(self.escalation, Escalation):
            raise TypeError(f"deadline escalation must be an Escalation: {self.escalation!r}")

    def to_dict(self) -> JSONObject:
        """The spec form, in milliseconds."""
        data: JSONObject = {"within_ms": to_ms(self.within)}
        if self.due_soon is not None:
            data["due_soon_ms"] = to_ms(self.due_soon)
        if self.escalation is not None:
            data["escalation"] = self.escalation.value
        return data


@dataclass(frozen=True)
class Compensation:
    """The saga callback of a step: a class reference or an action key, as for custom steps."""

    ref: str | None = None
    action: str | None = None

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"ref": ...}`` or ``{"action": ...}``."""
        data: JSONObject = {}
        if self.ref is not None:
            data["ref"] = self.ref
        if self.action is not None:
            data["action"] = self.action
        return data


@dataclass(frozen=True)
class StepSpec:
    """One step as data: what runs, what it reads and writes, and how it recovers.

    Fields that do not apply to the step's kind stay `None`; validation reports them if set.
    """

    name: str
    kind: StepKind
    ref: str | None = None
    """Implementation reference (``module:QualName``) of a class-declared custom step. Used
    for fingerprinting and display only: nothing is ever imported from it."""
    action: str | None = None
    """Action key of a runtime-authored custom step, resolved through an `ActionRegistry`."""
    input: tuple[InputBinding, ...] | None = None
    """What the step reads; `None` gives it the whole run state."""
    output: str | None = None
    """Key the output is stored under; `None` merges the output into the context."""
    after: tuple[str, ...] | None = None
    """Steps this one waits for (dependency workflows); `None` makes it a root."""
    retry: RetryPolicy | None = None
    compensate: Compensation | None = None
    irreversible: bool = False
    compensatable: bool = True
    deadline: Deadline | None = None
    duration: timedelta | None = None
    """How long a wait step waits."""
    message: str | None = None
    """What a log step writes."""
    level: LogLevel | None = None
    """The level a log step writes at."""

    @property
    def is_manual(self) -> bool:
        """Whether the step waits for an operator (pause or approval)."""
        return self.kind in MANUAL_STEP_KINDS

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy in force: the declared one, or a single attempt."""
        return self.retry if self.retry is not None else NO_RETRY

    @property
    def requires_replay_review(self) -> bool:
        """Whether replaying a run that completed this step needs an operator's override."""
        return self.irreversible or not self.compensatable

    def select_input(self, state: Mapping[str, JSONValue]) -> JSONObject:
        """The input this step receives from the run state (see `run_state`).

        Raises:
            MissingInputPath: a bound path is absent.
        """
        return select_input(self.name, self.input, state)

    def place_output(
        self, context: Mapping[str, JSONValue], output: Mapping[str, JSONValue]
    ) -> JSONObject:
        """The run context after this step returned `output`."""
        return place_output(self.output, context, output)

    def to_dict(self) -> JSONObject:
        """The spec form: name and kind, then every field that differs from its default."""
        data: JSONObject = {"name": self.name, "kind": self.kind.value}
        if self.ref is not None:
            data["ref"] = self.ref
        if self.action is not None:
            data["action"] = self.action
        if self.input is not None:
            data["input"] = [binding.to_dict() for binding in self.input]
        if self.output is not None:
            data["output"] = self.output
        if self.after is not None:
            data["after"] = list(self.after)
        if self.retry is not None and self.retry != NO_RETRY:
            data["retry"] = self.retry.to_dict()
        if self.compensate is not None:
            data["compensate"] = self.compensate.to_dict()
        if self.irreversible:
            data["irreversible"] = True
        if self.compensatable is self.irreversible:  # irreversible implies not compensatable
            data["compensatable"] = self.compensatable
        if self.deadline is not None:
            data["deadline"] = self.deadline.to_dict()
        if self.duration is not None:
            data["duration_ms"] = to_ms(self.duration)
        if self.message is not None:
            data["message"] = self.message
        if self.level is not None:
            data["level"] = self.level.value
        return data

    def describe(self) -> str:
        """One line for people: kind, implementation and the options in force."""
        parts = [self.kind.value]
        if self.ref is not None:
            parts.append(self.ref)
        if self.action is not None:
            parts.append(f"action={self.action}")
        if self.duration is not None:
            parts.append(str(self.duration))
        if self.message is not None:
            parts.append(f"{(self.level or LogLevel.INFO).value} {canonical_json(self.message)}")
        if self.after is not None:
            parts.append(f"after {', '.join(self.after)}")
        if self.input is not None:
            parts.append("input " + ", ".join(_describe_binding(b) for b in self.input))
        if self.output is not None:
            parts.append(f"output -> {self.output}")
        if self.retry is not None:
            parts.append(_describe_retry(self.retry))
        if self.compensate is not None:
            parts.append(f"compensate {self.compensate.ref or self.compensate.action}")
        if self.irreversible:
            parts.append("irreversible")
        elif not self.compensatable:
            parts.append("not compensatable")
        if self.deadline is not None:
            parts.append(f"due within {self.deadline.within}")
        return "  ".join(parts)


@dataclass(frozen=True)
class TransitionSpec:
    """A route: after `from_step` ends with `on`, go `to` a step, or to completion."""

    from_step: str
    on: Outcome
    to: str
    """A step name, or `COMPLETE`."""
    condition: Condition | None = None
    """Taken only when it matches; unconditional routes are the fallback."""
    recovery: Recovery | None = None
    """Marks an error route as compensation or undo; recorded when the route is taken."""

    @property
    def completes(self) -> bool:
        """Whether the route finishes the run."""
        return self.to == COMPLETE

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"from", "on", "to"}`` plus condition and recovery when set."""
        data: JSONObject = {"from": self.from_step, "on": self.on.value, "to": self.to}
        if self.condition is not None:
            data["condition"] = self.condition.to_dict()
        if self.recovery is not None:
            data["recovery"] = self.recovery.value
        return data

    def describe(self, width: int = 0) -> str:
        """One line for people: ``check  error -> credit  [recovery: compensation]``.

        The step name is padded to `width`, so the routes of a workflow line up.
        """
        text = f"{self.from_step.ljust(width)}  {self.on.value.ljust(5)} -> {self.to}"
        if self.condition is not None:
            text += f"  when {self.condition.describe()}"
        if self.recovery is not None:
            text += f"  [recovery: {self.recovery.value}]"
        return text


def _describe_binding(binding: InputBinding) -> str:
    path = ".".join(binding.path)
    return binding.key if path == binding.key else f"{binding.key}={path}"


def _describe_retry(retry: RetryPolicy) -> str:
    text = f"retry x{retry.max_attempts}"
    if retry.backoff is not None:
        backoff = retry.backoff
        if backoff.min == backoff.max:
            text += f" {backoff.type.value} {backoff.min}"
        else:
            text += f" {backoff.type.value} {backoff.min}..{backoff.max}"
    return text
