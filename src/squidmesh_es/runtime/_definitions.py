"""The definition a run executes under, and the code behind each of its runnables.

A run follows the graph it started with. A runtime-authored run (``start_spec``) carries
its resolved spec in its start event; a class-declared run stores only the fingerprint,
and the spec itself is stored once per workflow and fingerprint as a `WorkflowDefinition`
(`DefinitionStore`). Routing, retries, waits, approvals, dependencies and compensation read
that spec, whatever is deployed since.

The code is the other half: a step's implementation is found in today's workflow class by
its stable identity (its declared ref, else its name), never by module path, so a bug fix
reaches runs in flight and a moved class changes nothing. This module is the one place
that turns any planned runnable into the `Step` class that runs it, so workers never
import from data.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from eventsourcing.application import AggregateNotFoundError

from squidmesh_es.domain import (
    JSONDict,
    WorkflowDefinition,
    WorkflowRun,
    definition_id,
    is_side_work,
)
from squidmesh_es.errors import (
    ActionNotAllowed,
    DefinitionMismatch,
    InvalidArgument,
    SquidMeshError,
    UnknownStep,
)
from squidmesh_es.workflow import (
    ActionRegistry,
    Step,
    StepKind,
    Workflow,
    WorkflowMode,
    WorkflowSpec,
)

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "DefinitionChange",
    "DefinitionStore",
    "RunDefinition",
    "SpecCache",
    "definition_of",
]


class DefinitionChange(StrEnum):
    """What a runtime does with a run whose workflow changed since it started."""

    FOLLOW = "follow"
    """The run follows its own stored graph with today's step code (the default)."""
    FAIL = "fail"
    """The run fails with ``incompatible_workflow_definition`` (upstream's fencing)."""

    @classmethod
    def parse(cls, value: object) -> DefinitionChange:
        """The member named by ``value``.

        Raises:
            InvalidArgument: not ``"follow"`` or ``"fail"``.
        """
        try:
            return cls(str(value))
        except ValueError:
            raise InvalidArgument("on_definition_change", "must be 'follow' or 'fail'") from None


@dataclass(frozen=True)
class RunDefinition:
    """A run's own spec and the way to its code: a workflow class, an action registry, or both.

    ``workflow`` is today's class of the run's workflow (``None`` for a ``start_spec`` run);
    its steps run the run's custom steps, matched by identity.
    """

    spec: WorkflowSpec
    workflow: type[Workflow] | None = None
    actions: ActionRegistry | None = None
    on_change: DefinitionChange = DefinitionChange.FOLLOW

    def mismatch(self, run: WorkflowRun) -> DefinitionMismatch | None:
        """The refusal for ``run`` when it may not continue under this code, else None.

        A run whose graph is unknown (started before graphs were stored, under a definition
        this code no longer has) is refused; so is any changed run in strict mode.
        """
        if self.spec.matches(run.definition_fingerprint) and (
            self.on_change is DefinitionChange.FOLLOW or run.spec is not None
        ):
            return None
        return self.changed(run)

    def changed(self, run: WorkflowRun) -> DefinitionMismatch | None:
        """The evidence that today's code declares another graph than ``run`` started with."""
        current = self.workflow.to_spec() if self.workflow is not None else self.spec
        if current.matches(run.definition_fingerprint):
            return None
        return DefinitionMismatch(
            run.run_id,
            persisted_fingerprint=run.definition_fingerprint,
            current_fingerprint=current.fingerprint,
            persisted_version=run.definition_version,
            current_version=current.version,
        )

    def is_custom(self, planned: JSONDict) -> bool:
        """Whether a worker runs ``planned`` (custom steps, dynamic nodes, compensations)."""
        if is_side_work(planned):
            return True
        return self.spec.step(str(planned["step"])).kind is StepKind.CUSTOM

    def has_code(self, planned: JSONDict) -> bool:
        """Whether this process can run ``planned``: built-ins need no code."""
        if not self.is_custom(planned):
            return True
        try:
            self.step_class(planned)
        except SquidMeshError:
            return False
        return True

    def missing_steps(self, run: WorkflowRun) -> list[str]:
        """Custom steps still ahead of the run in its own graph that this code lacks."""
        ahead = self._ahead(run)
        return [
            step.name
            for step in self.spec.steps
            if step.name in ahead
            and step.kind is StepKind.CUSTOM
            and step.action is None
            and (self.workflow is None or self.workflow.implementation_of(step) is None)
        ]

    def _ahead(self, run: WorkflowRun) -> set[str]:
        """The steps the run waits on and every step a route leads to from them.

        A dependency workflow runs every step it has not applied; a transition workflow only
        those reachable from where it stands, so a branch it left behind is not counted.
        """
        applied = {str(a["step"]) for a in run.applied.values()}
        if self.spec.mode is WorkflowMode.DEPENDENCY:
            return {step.name for step in self.spec.steps} - applied
        stack = [
            str(p["step"])
            for key, p in run.planned.items()
            if key not in run.applied and not is_side_work(p)
        ]
        if run.manual_state is not None:
            stack.append(str(run.manual_state["step"]))
        ahead: set[str] = set()
        while stack:
            name = stack.pop()
            if name in ahead:
                continue
            ahead.add(name)
            stack.extend(t.to for t in self.spec.transitions if t.from_step == name)
        return ahead

    def step_class(self, planned: JSONDict) -> type[Step]:
        """The `Step` class that runs the planned runnable.

        Raises:
            ActionNotAllowed: its action key is refused by the registry, or there is none.
            UnknownStep: this code has no such step or compensation.
        """
        compensation = planned.get("compensation")
        if isinstance(compensation, dict):
            return self._compensation_class(str(compensation["step"]))
        action = planned.get("action")
        if isinstance(action, str):
            return self._action(action)
        name = str(planned["step"])
        found = None
        if self.workflow is not None:
            found = self.workflow.implementation_of(self.spec.step(name))
        if found is None:
            raise UnknownStep(workflow=self.spec.workflow, step=name)
        return found

    def _compensation_class(self, step: str) -> type[Step]:
        if self.workflow is not None:
            found = self.workflow.compensation_class(step)
            if found is not None:
                return found
        compensate = self.spec.step(step).compensate
        if compensate is None or compensate.action is None:
            raise UnknownStep(workflow=self.spec.workflow, step=f"compensate:{step}")
        return self._action(compensate.action)

    def _action(self, key: str) -> type[Step]:
        if self.actions is None:
            raise ActionNotAllowed(key, "no_action_registry")
        return self.actions.resolve(key)


class SpecCache:
    """Parsed specs by workflow and fingerprint: a worker settles many attempts of one spec."""

    def __init__(self, limit: int = 256) -> None:
        self._specs: dict[str, WorkflowSpec] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: str) -> WorkflowSpec | None:
        """The spec cached under ``key``, if any."""
        with self._lock:
            return self._specs.get(key)

    def put(self, key: str, spec: WorkflowSpec) -> None:
        """Keep ``spec`` under ``key``, dropping the oldest entry when full."""
        with self._lock:
            if key not in self._specs and len(self._specs) >= self._limit:
                self._specs.pop(next(iter(self._specs)))
            self._specs[key] = spec

    def spec_of(self, run: WorkflowRun) -> WorkflowSpec:
        """The spec stored with a ``start_spec`` run, parsed once per fingerprint."""
        key = f"runtime:{run.workflow}:{run.definition_version}:{run.definition_fingerprint}"
        cached = self.get(key)
        if cached is None:
            cached = WorkflowSpec.from_dict(run.spec)
            self.put(key, cached)
        return cached


class DefinitionStore:
    """Class-declared specs, stored once per workflow and fingerprint, read back after deploys.

    A start announces its spec with `prepare`; the first save of a run started under a
    spec not stored yet commits the spec with it, in the same transaction (`to_save`), so a
    committed run always finds its graph. Storing is content-addressed: racing processes
    write the same aggregate, and the loser's conflict makes it find the winner's.
    """

    def __init__(self, mesh: SquidMesh) -> None:
        self._mesh = mesh
        self._specs = SpecCache()
        self._stored: set[str] = set()
        self._pending: dict[str, WorkflowSpec] = {}
        self._lock = threading.Lock()

    def prepare(self, spec: WorkflowSpec) -> None:
        """Note that a run is starting under ``spec``; the store is read once per process."""
        key = _key(spec.workflow, spec.fingerprint)
        with self._lock:
            if key in self._stored or key in self._pending:
                return
        stored = self._load(spec.workflow, spec.fingerprint) is not None
        self._specs.put(key, spec)
        with self._lock:
            if stored:
                self._stored.add(key)
            else:
                self._pending[key] = spec

    def to_save(self, objs: Sequence[object]) -> list[WorkflowDefinition]:
        """The definitions that runs started (or migrated) among ``objs`` need stored with them."""
        found: dict[str, WorkflowDefinition] = {}
        if not self._pending:
            return []
        for obj in objs:
            if not isinstance(obj, WorkflowRun) or obj.spec is not None:
                continue
            key = _key(obj.workflow, str(obj.definition_fingerprint))
            with self._lock:
                spec = self._pending.get(key)
            if spec is None or key in found:
                continue
            moved = [e for e in obj.pending_events if isinstance(e, _MOVES_TO_A_DEFINITION)]
            if moved:
                found[key] = WorkflowDefinition.record(
                    workflow=spec.workflow,
                    fingerprint=spec.fingerprint,
                    spec=dict(spec.to_dict()),
                    now=moved[0].timestamp,
                )
        return list(found.values())

    def saved(self, definitions: Sequence[WorkflowDefinition], *, committed: bool) -> None:
        """After the save of ``definitions``: stored, or (on a conflict) to be read again."""
        with self._lock:
            for definition in definitions:
                key = _key(definition.workflow, definition.fingerprint)
                self._pending.pop(key, None)
                if committed:
                    self._stored.add(key)

    def spec_for(self, workflow: str, fingerprint: str | None) -> WorkflowSpec | None:
        """The stored spec of ``workflow`` under ``fingerprint``; ``None`` when none is stored."""
        if fingerprint is None:
            return None
        key = _key(workflow, fingerprint)
        cached = self._specs.get(key)
        if cached is not None:
            return cached
        definition = self._load(workflow, fingerprint)
        if definition is None:
            return None
        spec = WorkflowSpec.from_dict(definition.spec)
        self._specs.put(key, spec)
        return spec

    def _load(self, workflow: str, fingerprint: str) -> WorkflowDefinition | None:
        try:
            found: Any = self._mesh.repository.get(definition_id(workflow, fingerprint))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, WorkflowDefinition) else None


_MOVES_TO_A_DEFINITION = (WorkflowRun.RunStarted, WorkflowRun.RunMigrated)


def _key(workflow: str, fingerprint: str) -> str:
    return f"{workflow}:{fingerprint}"


def definition_of(
    run: WorkflowRun,
    workflow: type[Workflow] | None,
    actions: ActionRegistry | None,
    store: DefinitionStore,
    runtime_specs: SpecCache,
    on_change: DefinitionChange = DefinitionChange.FOLLOW,
) -> RunDefinition | None:
    """The definition ``run`` executes under; ``None`` when this process lacks its code.

    A runtime-spec run carries its spec. A class-declared run needs its workflow's class
    (``workflow``, looked up by name by the caller) for its code; its spec is that class's
    when the fingerprints agree (no read), else the one stored when the run started. A run
    started before graphs were stored, whose workflow changed since, gets today's spec,
    which `RunDefinition.mismatch` refuses.
    """
    if run.spec is not None:
        return RunDefinition(runtime_specs.spec_of(run), None, actions, on_change)
    if workflow is None:
        return None
    current = workflow.to_spec()
    if not current.matches(run.definition_fingerprint):
        stored = store.spec_for(run.workflow, run.definition_fingerprint)
        if stored is not None:
            return RunDefinition(stored, workflow, actions, on_change)
    return RunDefinition(current, workflow, actions, on_change)
