"""Step and route declarations, and the factory functions a workflow class body calls.

Each factory checks the Python types of its arguments where they are written, so a string
in place of a step class fails on that line; values are checked later, by validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from squidmesh_es.workflow._conditions import Condition
from squidmesh_es.workflow._elements import (
    Compensation,
    Deadline,
    StepSpec,
    TransitionSpec,
    TriggerSpec,
)
from squidmesh_es.workflow._mapping import ContextPath, bindings_from
from squidmesh_es.workflow._retry import RetryPolicy, require_timedelta
from squidmesh_es.workflow._steps import Step, implementation_ref
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
        ref: str | None = None,
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
        _require(ref, str, "ref")
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
        self.ref = ref
        """The declared identity (``step(..., ref=...)``), or ``None``."""
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
            ref=self._ref(),
            input=self.input,
            output=self.output,
            after=None if self.after is None else tuple(_step_name(d, names) for d in self.after),
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

    def _ref(self) -> str | None:
        if self.ref is not None:
            return self.ref
        return None if self.implementation is None else implementation_ref(self.implementation)


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
        to = self.to if isinstance(self.to, str) else _step_name(self.to, names)
        return TransitionSpec(
            _step_name(self.from_step, names), self.on, to, self.when, self.recovery
        )


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
    ref: str | None = None,
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
        ref: a stable identity for the step's code (``"payments.charge"``: letters, digits,
            ``_``, ``.`` and ``-``, no colon). Runs in flight find their code by it, so the
            step may be renamed and its class moved; by default the step name is the
            identity and the class's ``module:QualName`` is recorded for display.
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
        ref=ref,
    )


def wait(
    duration: timedelta,
    *,
    after: Sequence[StepDeclaration] | None = None,
    input: Sequence[str] | Mapping[str, ContextPath] | None = None,
) -> StepDeclaration:
    """A durable delay: the next step becomes visible `duration` later; no worker sleeps.

    `input`, as for `step`, selects what is recorded as the step's input.
    """
    return StepDeclaration(StepKind.WAIT, duration=duration, after=after, input=input)


def log(
    message: str,
    *,
    level: LogLevel = LogLevel.INFO,
    after: Sequence[StepDeclaration] | None = None,
    input: Sequence[str] | Mapping[str, ContextPath] | None = None,
) -> StepDeclaration:
    """Write `message` to the application log at `level`, then continue.

    A worker claims the step like any other, writes the line with the run's ids, and
    completes it. `input`, as for `step`, selects what is recorded as the attempt's input.
    """
    return StepDeclaration(StepKind.LOG, message=message, level=level, after=after, input=input)


def pause(
    *,
    deadline: Deadline | None = None,
    input: Sequence[str] | Mapping[str, ContextPath] | None = None,
) -> StepDeclaration:
    """Stop the run here until an operator resumes it (transition workflows only).

    `input`, as for `step`, selects what is recorded as the step's input.
    """
    return StepDeclaration(StepKind.PAUSE, deadline=deadline, input=input)


def approval(
    *,
    output: str | None = None,
    deadline: Deadline | None = None,
    input: Sequence[str] | Mapping[str, ContextPath] | None = None,
) -> StepDeclaration:
    """Stop the run for a decision: approve takes the ``ok`` route, reject the ``error`` route.

    The decision (actor, comment, metadata) is the step's output, stored under `output`,
    whichever it is. Transition workflows only; declare both routes. `input`, as for
    `step`, selects what is recorded as the step's input (what the approver decides on).
    """
    return StepDeclaration(StepKind.APPROVAL, output=output, deadline=deadline, input=input)


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


def _step_name(declaration: StepDeclaration, names: Mapping[int, str]) -> str:
    """The step name of `declaration` in this workflow; a marker for one declared elsewhere."""
    found = names.get(id(declaration))
    return found if found is not None else f"<not in this workflow: {declaration.name}>"


def _require(value: object, expected: type, what: str) -> None:
    if value is not None and not isinstance(value, expected):
        raise TypeError(f"{what} must be a {expected.__name__}, got {value!r}")
