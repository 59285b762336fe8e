"""The step contract: the `Step` base class, its results, and the context a step runs in."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from squidmesh_es.errors import ChildRunsUnavailable
from squidmesh_es.workflow._json import JSONObject, JSONValue

if TYPE_CHECKING:
    from squidmesh_es.workflow._dsl import Workflow


@dataclass(frozen=True)
class Ok:
    """The step succeeded; `output` is merged into the run context (or stored under its key)."""

    output: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    """The step failed for good: no retry, the ``error`` route (or compensation) follows."""

    reason: JSONValue


@dataclass(frozen=True)
class Retry:
    """The step failed but may succeed later; the retry policy decides whether it runs again.

    `delay` overrides the policy's backoff for this retry, for example a server's
    ``Retry-After``.
    """

    reason: JSONValue
    delay: timedelta | None = None


@dataclass(frozen=True)
class Defer:
    """Not a failure: run this step again after `delay`, keeping the attempt number.

    Use it when the step observed that its work is not ready yet (a payment still pending);
    it consumes no retry budget.
    """

    reason: JSONValue
    delay: timedelta


StepResult = Ok | Error | Retry | Defer
"""What `Step.run` returns."""


@dataclass(frozen=True)
class ParentRun:
    """Where a child run came from: the parent run, step and attempt that started it."""

    run_id: UUID
    step: str
    runnable_key: str
    attempt: int
    child_key: str


class ChildRun(Protocol):
    """What starting a child run gives back to the step: at least the child's run id."""

    @property
    def run_id(self) -> UUID | str:
        """The child run's id."""
        ...


class ChildRunStarter(Protocol):
    """Starts child runs on behalf of a step; the runtime implements it.

    Starting again with the same parent step, workflow, trigger and `child_key` returns the
    existing child.
    """

    def start_child_run(
        self,
        ctx: StepContext,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue],
        *,
        child_key: str,
        trigger: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> ChildRun:
        """Start (or find) the child run `child_key` of the step `ctx` describes."""
        ...


@dataclass(frozen=True)
class StepContext:
    """What a running step may know about its run and attempt. Never the claim token.

    `idempotency_key` is stable across redeliveries of the same attempt: pass it to external
    systems so a repeated delivery does not repeat the side effect.
    """

    run_id: UUID
    workflow: str
    step: str
    attempt: int
    """Attempt number, from 1; a deferred continuation keeps its number."""
    runnable_key: str
    idempotency_key: str
    claim_id: str | None = None
    """Identifies the claim that delivered this attempt, for reconciliation; not a secret."""
    schedule: JSONObject | None = None
    """Scheduler metadata of cron runs (signal id, intended window), else `None`."""
    parent: ParentRun | None = None
    """Lineage of a child run, else `None`."""
    child_runs: ChildRunStarter | None = field(default=None, repr=False, compare=False)
    """The runtime's child-run starter; `None` outside a runtime (in unit tests, say)."""

    def start_child_run(
        self,
        workflow: type[Workflow],
        payload: Mapping[str, JSONValue],
        *,
        child_key: str,
        trigger: str | None = None,
        queue: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
    ) -> ChildRun:
        """Start `workflow` as a child of this step, or return the child `child_key` started.

        Raises:
            ChildRunsUnavailable: the context is not attached to a runtime.
        """
        if self.child_runs is None:
            raise ChildRunsUnavailable(step=self.step)
        return self.child_runs.start_child_run(
            self,
            workflow,
            payload,
            child_key=child_key,
            trigger=trigger,
            queue=queue,
            metadata=metadata,
        )


class Step(ABC):
    """Base of custom steps: subclass it and implement `run`, plain or ``async``.

    The runtime makes one instance per attempt with no arguments. Keep side effects
    idempotent under `StepContext.idempotency_key`: a delivery can repeat after a crash.
    """

    @abstractmethod
    def run(self, input: JSONObject, ctx: StepContext) -> StepResult | Awaitable[StepResult]:
        """Do the step's work on `input` and say how it went.

        An exception counts as a retryable failure; only its type name and message are kept.
        """


def is_declared_ref(ref: str | None) -> bool:
    """Whether ``ref`` was declared with ``step(..., ref=...)`` rather than derived.

    A derived reference is ``module:QualName``; a declared one has no colon. A declared
    reference is the step's identity across deploys: runs find their code by it.
    """
    return ref is not None and ":" not in ref


def implementation_ref(step_class: type) -> str:
    """The stable reference of a step class: ``module:QualName``.

    For display and fingerprinting only; nothing is ever imported from it. A class defined in
    a module run as a program is named as other processes would import it: by its name under
    ``python -m``, else by the script's file name (its directory comes first on the path).
    """
    module = step_class.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec_name = getattr(getattr(main, "__spec__", None), "name", None)
        file = getattr(main, "__file__", None)
        module = spec_name or (PurePath(file).stem if isinstance(file, str) else module)
    return f"{module}:{step_class.__qualname__}"
