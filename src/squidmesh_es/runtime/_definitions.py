"""The definition a run executes under, and the code behind each of its runnables.

A run is either of a registered `Workflow` class (its spec and step classes come from the
class) or of a runtime-authored spec (``start_spec``: the resolved spec is stored with the
run and its steps are action keys resolved through the host's `ActionRegistry`). Dynamic
nodes and compensations are runnables too; this module is the one place that turns any
planned runnable into the `Step` class that runs it, so workers never import from data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from squidmesh_es.domain import JSONDict, WorkflowRun, is_side_work
from squidmesh_es.errors import ActionNotAllowed, DefinitionMismatch, UnknownStep
from squidmesh_es.workflow import ActionRegistry, Step, StepKind, Workflow, WorkflowSpec

__all__ = ["RunDefinition", "SpecCache", "definition_of"]


@dataclass(frozen=True)
class RunDefinition:
    """A run's spec and the way to its code: a workflow class, an action registry, or both."""

    spec: WorkflowSpec
    workflow: type[Workflow] | None = None
    actions: ActionRegistry | None = None

    def mismatch(self, run: WorkflowRun) -> DefinitionMismatch | None:
        """The refusal for ``run`` when it was started under another definition, else None."""
        if self.spec.matches(run.definition_fingerprint):
            return None
        return DefinitionMismatch(
            run.run_id,
            persisted_fingerprint=run.definition_fingerprint,
            current_fingerprint=self.spec.fingerprint,
            persisted_version=run.definition_version,
            current_version=self.spec.version,
        )

    def is_custom(self, planned: JSONDict) -> bool:
        """Whether a worker runs ``planned`` (custom steps, dynamic nodes, compensations)."""
        if is_side_work(planned):
            return True
        return self.spec.step(str(planned["step"])).kind is StepKind.CUSTOM

    def step_class(self, planned: JSONDict) -> type[Step]:
        """The `Step` class that runs the planned runnable.

        Raises:
            ActionNotAllowed: its action key is refused by the registry, or there is none.
            UnknownStep: the definition has no such step or compensation.
        """
        compensation = planned.get("compensation")
        if isinstance(compensation, dict):
            return self._compensation_class(str(compensation["step"]))
        action = planned.get("action")
        if isinstance(action, str):
            return self._action(action)
        if self.workflow is None:
            raise UnknownStep(workflow=self.spec.workflow, step=str(planned["step"]))
        return self.workflow.step_class(str(planned["step"]))

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
    """Parsed runtime specs by fingerprint: a worker settles many attempts of one spec."""

    def __init__(self, limit: int = 256) -> None:
        self._specs: dict[str, WorkflowSpec] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def spec_of(self, run: WorkflowRun) -> WorkflowSpec:
        """The spec stored with ``run``, parsed once per fingerprint."""
        key = f"{run.workflow}:{run.definition_version}:{run.definition_fingerprint}"
        with self._lock:
            cached = self._specs.get(key)
        if cached is not None:
            return cached
        spec = WorkflowSpec.from_dict(run.spec)
        with self._lock:
            if len(self._specs) >= self._limit:
                self._specs.pop(next(iter(self._specs)))
            self._specs[key] = spec
        return spec


def definition_of(
    run: WorkflowRun,
    workflow: type[Workflow] | None,
    actions: ActionRegistry | None,
    specs: SpecCache,
) -> RunDefinition | None:
    """The definition ``run`` executes under; ``None`` when this process lacks its code.

    A runtime-spec run carries its definition; a class-declared run needs its class
    (``workflow``, looked up by name by the caller).
    """
    if run.spec is not None:
        return RunDefinition(specs.spec_of(run), None, actions)
    if workflow is None:
        return None
    return RunDefinition(workflow.to_spec(), workflow, actions)
