"""The authoring DSL: a workflow is a class whose body declares its steps and routes.

Example:
    class PaymentRecovery(Workflow):
        payload = RecoveryRequest
        triggers = [manual("payment_recovery")]

        load_invoice = step(LoadInvoice)
        notify_customer = step(NotifyCustomer, compensatable=False)

        transitions = [
            transition(load_invoice, to=notify_customer),
            transition(notify_customer, to=COMPLETE),
        ]

The attribute name is the step name, and declaration order is kept. Steps are referenced by
their declarations, never by strings, so an IDE completes them and a typo fails at once.
The class is validated when it is defined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

from pydantic import BaseModel

from squidmesh_es.errors import Issue, UnknownStep, WorkflowValidationError
from squidmesh_es.workflow._conditions import Condition
from squidmesh_es.workflow._elements import (
    Compensation,
    Deadline,
    StepSpec,
    TransitionSpec,
    TriggerSpec,
)
from squidmesh_es.workflow._json import JSONObject
from squidmesh_es.workflow._mapping import ContextPath, bindings_from
from squidmesh_es.workflow._payload import NoPayload, PayloadContract, fields_from_model
from squidmesh_es.workflow._retry import RetryPolicy, require_timedelta
from squidmesh_es.workflow._spec import WorkflowSpec
from squidmesh_es.workflow._steps import Step, implementation_ref
from squidmesh_es.workflow._validation import spec_issues
from squidmesh_es.workflow._vocab import (
    COMPLETE,
    Complete,
    CronIdempotency,
    LogLevel,
    Outcome,
    Recovery,
    StepKind,
    TriggerType,
)

_T = TypeVar("_T")

_RESERVED = frozenset({"name", "version", "payload", "triggers", "transitions"})


class StepDeclaration:
    """A step declared in a workflow class body; the attribute it is bound to names it.

    Make one with `step`, `wait`, `log`, `pause` or `approval`, and reference it from
    `transition` and from other steps' ``after`` lists.
    """

    def __init__(
        self,
        kind: StepKind,
        *,
        implementation: type[Step] | None = None,
        input: Sequence[str] | Mapping[str, ContextPath] | None = None,
        output: str | None = None,
        after: Sequence[StepDeclaration] | None = None,
        retry: RetryPolicy | None = None,
        compensate: type[Step] | None = None,
        irreversible: bool = False,
        compensatable: bool | None = None,
        deadline: Deadline | None = None,
        duration: timedelta | None = None,
        message: str | None = None,
        level: LogLevel | None = None,
    ) -> None:
        """Check the Python types of everything declared; values are checked by validation.

        Raises:
            TypeError: an argument has the wrong type (a string where a step class belongs).
        """
        for value, what in (
            (implementation, "the step implementation"),
            (compensate, "compensate"),
        ):
            if value is not None and not (isinstance(value, type) and issubclass(value, Step)):
                raise TypeError(f"{what} must be a Step subclass, got {value!r}")
        _require(output, str, "output")
        _require(retry, RetryPolicy, "retry")
        _require(deadline, Deadline, "deadline")
        _require(message, str, "message")
        _require(level, LogLevel, "level")
        if duration is not None:
            require_timedelta(duration, "the wait duration")
        if after is not None and (
            isinstance(after, str) or not all(isinstance(d, StepDeclaration) for d in after)
        ):
            raise TypeError("after must be a sequence of step declarations")
        if not isinstance(irreversible, bool) or not isinstance(compensatable, bool | None):
            raise TypeError("irreversible and compensatable must be booleans")
        self.kind = kind
        self.implementation = implementation
        self.input = None if input is None else bindings_from(input)
        self.output = output
        self.after = None if after is None else tuple(after)
        self.retry = retry
        self.compensate = compensate
        self.irreversible = irreversible
        self.compensatable = (not irreversible) if compensatable is None else compensatable
        self.deadline = deadline
        self.duration = duration
        self.message = message
        self.level = level
        self.name: str | None = None
        """The attribute name this declaration was first bound to."""

    def __set_name__(self, owner: type, name: str) -> None:
        if self.name is None:
            self.name = name

    def __repr__(self) -> str:
        return f"<{self.kind.value} step {self.name or '(unbound)'}>"

    def to_step_spec(self, name: str, names: Mapping[int, str]) -> StepSpec:
        """This declaration as a spec step called `name`; `names` maps declarations to names."""
        return StepSpec(
            name=name,
            kind=self.kind,
            ref=None if self.implementation is None else implementation_ref(self.implementation),
            input=self.input,
            output=self.output,
            after=None if self.after is None else tuple(_name(d, names) for d in self.after),
            retry=self.retry,
            compensate=None
            if self.compensate is None
            else Compensation(ref=implementation_ref(self.compensate)),
            irreversible=self.irreversible,
            compensatable=self.compensatable,
            deadline=self.deadline,
            duration=self.duration,
            message=self.message,
            level=self.level,
        )


class TransitionDeclaration:
    """A route declared with `transition`, between step declarations."""

    def __init__(
        self,
        from_step: StepDeclaration,
        *,
        on: Outcome,
        to: StepDeclaration | Complete,
        when: Condition | None,
        recovery: Recovery | None,
    ) -> None:
        """Check the Python types of the route's parts.

        Raises:
            TypeError: a part has the wrong type.
        """
        if not isinstance(from_step, StepDeclaration):
            raise TypeError(f"a transition starts from a step declaration, got {from_step!r}")
        if not isinstance(to, StepDeclaration) and to != COMPLETE:
            raise TypeError(f"a transition goes to a step declaration or COMPLETE, got {to!r}")
        _require(on, Outcome, "on")
        _require(when, Condition, "when")
        _require(recovery, Recovery, "recovery")
        self.from_step = from_step
        self.on = on
        self.to = to
        self.when = when
        self.recovery = recovery

    def to_transition_spec(self, names: Mapping[int, str]) -> TransitionSpec:
        """This route as a spec transition; `names` maps declarations to step names."""
        to = self.to if isinstance(self.to, str) else _name(self.to, names)
        return TransitionSpec(_name(self.from_step, names), self.on, to, self.when, self.recovery)


def step(
    implementation: type[Step],
    *,
    input: Sequence[str] | Mapping[str, ContextPath] | None = None,
    output: str | None = None,
    after: Sequence[StepDeclaration] | None = None,
    retry: RetryPolicy | None = None,
    compensate: type[Step] | None = None,
    irreversible: bool = False,
    compensatable: bool | None = None,
    deadline: Deadline | None = None,
) -> StepDeclaration:
    """A step run by your `Step` subclass.

    Args:
        implementation: the `Step` subclass; the runtime makes one instance per attempt.
        input: what the step reads: top-level names (``["account_id"]``), or new names for
            values at nested paths (``{"tier": "account.tier"}``). Default: the whole state.
        output: store the output under this key instead of merging it into the context.
        after: steps to wait for (dependency workflows). Omit for a root; never ``[]``.
        retry: attempts and backoff; by default a step gets one attempt.
        compensate: a `Step` that undoes this one if a later step fails for good.
        irreversible: the effect cannot be undone; replay then needs an explicit override.
        compensatable: ``False`` when there is no reliable undo; defaults to not
            `irreversible`.
        deadline: when the step is due, as evidence for operators.
    """
    return StepDeclaration(
        StepKind.CUSTOM,
        implementation=implementation,
        input=input,
        output=output,
        after=after,
        retry=retry,
        compensate=compensate,
        irreversible=irreversible,
        compensatable=compensatable,
        deadline=deadline,
    )


def wait(duration: timedelta, *, after: Sequence[StepDeclaration] | None = None) -> StepDeclaration:
    """A durable delay: the next step becomes visible `duration` later; no worker sleeps."""
    return StepDeclaration(StepKind.WAIT, duration=duration, after=after)


def log(
    message: str,
    *,
    level: LogLevel = LogLevel.INFO,
    after: Sequence[StepDeclaration] | None = None,
) -> StepDeclaration:
    """Write `message` to the application log at `level`, then continue."""
    return StepDeclaration(StepKind.LOG, message=message, level=level, after=after)


def pause(*, deadline: Deadline | None = None) -> StepDeclaration:
    """Stop the run here until an operator resumes it (transition workflows only)."""
    return StepDeclaration(StepKind.PAUSE, deadline=deadline)


def approval(*, output: str | None = None, deadline: Deadline | None = None) -> StepDeclaration:
    """Stop the run for a decision: approve takes the ``ok`` route, reject the ``error`` route.

    The decision (actor, comment, metadata) is the step's output, stored under `output`.
    Transition workflows only; declare both routes.
    """
    return StepDeclaration(StepKind.APPROVAL, output=output, deadline=deadline)


def transition(
    from_step: StepDeclaration,
    *,
    to: StepDeclaration | Complete,
    on: Outcome = Outcome.OK,
    when: Condition | None = None,
    recovery: Recovery | None = None,
) -> TransitionDeclaration:
    """Route `from_step`'s `on` outcome to `to` (a step, or `COMPLETE`).

    Conditional routes (`when`) are tried in declaration order; the first that matches wins
    and an unconditional route is the fallback. An error route is taken once retries are
    exhausted; `recovery` records it as compensation or undo.
    """
    return TransitionDeclaration(from_step, on=on, to=to, when=when, recovery=recovery)


def manual(name: str) -> TriggerSpec:
    """A trigger the host starts runs through with ``start``."""
    _require(name, str, "the trigger name")
    return TriggerSpec(name, TriggerType.MANUAL)


def cron(
    name: str,
    expression: str,
    *,
    timezone: str = "Etc/UTC",
    idempotency: CronIdempotency | None = None,
) -> TriggerSpec:
    """A trigger the host's scheduler fires on `expression` (read in `timezone`).

    With `idempotency`, a repeated delivery of one scheduled activation starts one run.
    Cron runs get no caller input, so give every payload field a default.
    """
    for value, what in (
        (name, "the trigger name"),
        (expression, "expression"),
        (timezone, "timezone"),
    ):
        _require(value, str, what)
    _require(idempotency, CronIdempotency, "idempotency")
    return TriggerSpec(name, TriggerType.CRON, expression, timezone, idempotency)


class Workflow:
    """Base of class-declared workflows: subclass it and declare the workflow in the body.

    Class attributes: `name` (default: the class's qualified name), `version` (an operator
    label), `payload` (a pydantic model; default: no fields), `triggers` and `transitions`.
    Every other attribute bound to a step declaration is a step. Pass ``abstract=True`` to
    declare a base class that is not a workflow itself.
    """

    name: ClassVar[str]
    version: ClassVar[str | None] = None
    payload: ClassVar[type[BaseModel]] = NoPayload
    triggers: ClassVar[Sequence[TriggerSpec]] = ()
    transitions: ClassVar[Sequence[TransitionDeclaration]] = ()

    _spec: ClassVar[WorkflowSpec | None] = None
    _contract: ClassVar[PayloadContract]
    _step_classes: ClassVar[dict[str, type[Step]]]
    _compensation_classes: ClassVar[dict[str, type[Step]]]

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: object) -> None:
        """Build and validate the workflow's spec when the class is defined.

        Raises:
            WorkflowValidationError: the declaration breaks a rule; every issue is listed.
        """
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__qualname__
        cls._spec = None
        if abstract:
            return
        declarations = _declarations(cls)
        spec, issues = _build(cls, declarations)
        if issues or spec is None:
            details = "; ".join(issue.message for issue in issues)
            raise WorkflowValidationError(f"workflow {cls.name!r} is invalid ({details})", issues)
        cls._spec = spec
        cls._contract = PayloadContract.from_model(cls.name, cls.payload)
        cls._step_classes = {
            name: d.implementation for name, d in declarations.items() if d.implementation
        }
        cls._compensation_classes = {
            name: d.compensate for name, d in declarations.items() if d.compensate
        }

    @classmethod
    def to_spec(cls) -> WorkflowSpec:
        """The workflow's validated spec, built once when the class was defined.

        Raises:
            TypeError: the class was declared ``abstract=True``.
        """
        if cls._spec is None:
            raise TypeError(f"{cls.__qualname__} is abstract and has no spec")
        return cls._spec

    @classmethod
    def resolve_trigger(cls, trigger: str | None = None) -> TriggerSpec:
        """The trigger called `trigger`; without a name, the only trigger.

        Raises:
            InvalidTrigger: no such trigger, or no name while there are several.
        """
        return cls.to_spec().trigger(trigger)

    @classmethod
    def validate_payload(
        cls, payload: object, trigger: str | None = None, *, now: datetime | None = None
    ) -> JSONObject:
        """The run input for `payload`: checked by the workflow's pydantic model, JSON-safe.

        Defaults are applied, and keys the model does not declare are refused unless the
        model sets its own ``extra`` policy. A `today_iso8601` default takes its date from
        `now`, the run's creation time, when given.

        Raises:
            InvalidTrigger: `trigger` is not declared, or is needed and missing.
            PayloadValidationError: the payload breaks the contract; one issue per problem.
        """
        cls.resolve_trigger(trigger)
        return cls._contract.validate(payload, now=now)

    @classmethod
    def step_class(cls, step: str) -> type[Step]:
        """The `Step` class that runs custom step `step`.

        Raises:
            UnknownStep: no custom step has that name.
        """
        cls.to_spec()
        try:
            return cls._step_classes[step]
        except KeyError:
            raise UnknownStep(workflow=cls.name, step=step) from None

    @classmethod
    def compensation_class(cls, step: str) -> type[Step] | None:
        """The `Step` class that compensates `step`, or `None` when it declares none.

        Raises:
            UnknownStep: the workflow has no such step.
        """
        cls.to_spec().step(step)
        return cls._compensation_classes.get(step)


def _declarations(cls: type[Workflow]) -> dict[str, StepDeclaration]:
    """Step declarations from the class and its bases, in declaration order."""
    found: dict[str, StepDeclaration] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, StepDeclaration):
                found[name] = value
            elif name in found:
                del found[name]
    return found


def _build(
    cls: type[Workflow], declarations: dict[str, StepDeclaration]
) -> tuple[WorkflowSpec | None, list[Issue]]:
    issues: list[Issue] = []
    names: dict[int, str] = {}
    for index, (name, declaration) in enumerate(declarations.items()):
        if name in _RESERVED:
            issues.append(
                Issue(("steps", index, "name"), "invalid_step_name", f"{name!r} is reserved")
            )
        if id(declaration) in names:
            issues.append(
                Issue(
                    ("steps", index),
                    "invalid_step",
                    f"{name!r} is the same declaration as {names[id(declaration)]!r}",
                )
            )
        names.setdefault(id(declaration), name)
    payload_model = cls.payload
    if not (isinstance(payload_model, type) and issubclass(payload_model, BaseModel)):
        message = "payload must be a pydantic model class"
        return None, [*issues, Issue(("payload",), "invalid_payload_contract", message)]
    fields, payload_issues = fields_from_model(payload_model)
    issues.extend(payload_issues)
    triggers = _items(cls.triggers, "triggers", TriggerSpec, issues)
    transitions = _items(cls.transitions, "transitions", TransitionDeclaration, issues)
    if issues:
        return None, issues
    data: JSONObject = {
        "workflow": cls.name,
        "version": cls.version,
        "triggers": [t.to_dict() for t in triggers],
        "payload": [f.to_dict() for f in fields],
        "steps": [d.to_step_spec(n, names).to_dict() for n, d in declarations.items()],
        "transitions": [t.to_transition_spec(names).to_dict() for t in transitions],
    }
    try:
        spec = WorkflowSpec.from_dict(data)
    except WorkflowValidationError as exc:
        return None, list(exc.issues)
    return spec, spec_issues(spec)


def _items(value: object, key: str, kind: type[_T], issues: list[Issue]) -> list[_T]:
    """The items of class attribute `key`, each checked to be a `kind`."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        issues.append(Issue((key,), "invalid_collection", f"{key} must be a list"))
        return []
    for index, item in enumerate(value):
        if not isinstance(item, kind):
            message = f"{key} must hold {kind.__name__}s, got {item!r}"
            issues.append(Issue((key, index), f"invalid_{key[:-1]}", message))
    return list(value)


def _name(declaration: StepDeclaration, names: Mapping[int, str]) -> str:
    """The step name of `declaration` in this workflow; a marker for one declared elsewhere."""
    found = names.get(id(declaration))
    return found if found is not None else f"<not in this workflow: {declaration.name}>"


def _require(value: object, expected: type, what: str) -> None:
    if value is not None and not isinstance(value, expected):
        raise TypeError(f"{what} must be a {expected.__name__}, got {value!r}")
