"""`WorkflowSpec`: a workflow definition as JSON-safe data, with the queries the engine needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from squidmesh_es.errors import InvalidTrigger, Issue, UnknownStep, WorkflowValidationError
from squidmesh_es.workflow._conditions import Condition
from squidmesh_es.workflow._elements import PayloadField, StepSpec, TransitionSpec, TriggerSpec
from squidmesh_es.workflow._json import JSONObject, JSONValue, json_equal, sha256_hex
from squidmesh_es.workflow._parse import parse_spec
from squidmesh_es.workflow._payload import PayloadContract
from squidmesh_es.workflow._vocab import EdgeType, Outcome, Recovery, WorkflowMode


@dataclass(frozen=True)
class Route:
    """The route chosen for a step outcome, with the id of its edge in the graph."""

    transition: TransitionSpec
    edge_id: str
    """``<from>:<outcome>:<to>``, plus ``:condition:<i>`` for the i-th conditional route of
    the same step and outcome."""

    @property
    def to(self) -> str:
        """The next step's name, or `COMPLETE`."""
        return self.transition.to

    @property
    def completes(self) -> bool:
        """Whether the route finishes the run."""
        return self.transition.completes

    @property
    def recovery(self) -> Recovery | None:
        """The recovery marker to record when the route is taken."""
        return self.transition.recovery

    def to_dict(self) -> JSONObject:
        """The decision as persisted data: the transition's spec form and the edge id."""
        return {**self.transition.to_dict(), "edge_id": self.edge_id}


@dataclass(frozen=True)
class SpecEdge:
    """A declared edge of the workflow graph, before any run gives it a status."""

    id: str
    from_step: str
    to: str
    type: EdgeType
    outcome: Outcome | None = None
    condition: Condition | None = None
    recovery: Recovery | None = None

    def to_dict(self) -> JSONObject:
        """The edge in the graph-inspection shape, without run status."""
        return {
            "id": self.id,
            "from": self.from_step,
            "to": self.to,
            "type": self.type.value,
            "outcome": self.outcome.value if self.outcome else None,
            "condition": self.condition.to_dict() if self.condition else None,
            "recovery": self.recovery.value if self.recovery else None,
        }


@dataclass(frozen=True)
class WorkflowSpec:
    """A workflow definition as data: what runs persist, editors edit and the engine reads.

    Build one with `Workflow.to_spec()` or `WorkflowSpec.from_dict()`, then check it with
    `validate_spec`. The queries below assume a valid spec.
    """

    workflow: str
    """The workflow's name; runs and listings group by it."""
    triggers: tuple[TriggerSpec, ...]
    steps: tuple[StepSpec, ...]
    transitions: tuple[TransitionSpec, ...] = ()
    payload: tuple[PayloadField, ...] = ()
    version: str | None = None
    """Operator label (e.g. ``2026-05-26.payment-recovery``); not part of the fingerprint."""

    @classmethod
    def from_dict(cls, data: object) -> WorkflowSpec:
        """Read a spec from its `to_dict` form, as decoded from JSON.

        Checks shapes and types only; call `validate_spec` for the workflow rules. The entry
        fields (``entry_steps``, ``initial_step``, ``entry_step``) are derived from the steps;
        when given, they must agree with what the steps imply.

        Raises:
            WorkflowValidationError: the data is not a spec; every problem is an issue.
        """
        parsed = parse_spec(data)
        spec = cls(
            workflow=parsed.workflow,
            triggers=parsed.triggers,
            steps=parsed.steps,
            transitions=parsed.transitions,
            payload=parsed.payload,
            version=parsed.version,
        )
        issues = spec._declared_entry_issues(parsed.declared_entry)
        if issues:
            raise WorkflowValidationError("workflow spec entry fields disagree", issues)
        return spec

    def to_dict(self) -> JSONObject:
        """The spec as JSON-safe data with string keys; `from_dict` reads it back."""
        return {
            "workflow": self.workflow,
            "version": self.version,
            "triggers": [trigger.to_dict() for trigger in self.triggers],
            "payload": [field.to_dict() for field in self.payload],
            "steps": [step.to_dict() for step in self.steps],
            "transitions": [transition.to_dict() for transition in self.transitions],
            "entry_steps": list(self.entry_steps),
            "initial_step": self.initial_step,
            "entry_step": self.entry_step,
        }

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of `canonical_form`, the steps and transitions.

        It changes whenever what a run does changes: steps, implementations, options, routes,
        conditions. It ignores the version label, the workflow name, triggers and payload,
        which matter only when a run starts, when its input is resolved once and persisted.
        """
        return sha256_hex(self.canonical_form())

    def canonical_form(self) -> JSONObject:
        """The steps and transitions without order that means nothing: what is fingerprinted.

        Steps are taken by name, ``after`` lists and input bindings sorted, and routes
        grouped by ``(from, on)``, keeping only the order within a group, where the first
        matching condition wins. Reordering a declaration then never fences runs in flight.
        """
        steps: list[JSONValue] = []
        for step in sorted(self.steps, key=lambda s: s.name):
            data = step.to_dict()
            if step.after is not None:
                data["after"] = list[JSONValue](sorted(step.after))
            if step.input is not None:
                bindings = sorted(step.input, key=lambda b: b.key)
                data["input"] = [binding.to_dict() for binding in bindings]
            steps.append(data)
        routes = sorted(self.transitions, key=lambda t: (t.from_step, t.on.value))
        return {"steps": steps, "transitions": [transition.to_dict() for transition in routes]}

    @cached_property
    def declared_order_fingerprint(self) -> str:
        """The fingerprint as earlier builds computed it: in declaration order.

        Runs started before the canonical `fingerprint` stored this one; they still match.
        """
        return sha256_hex(
            {
                "steps": [step.to_dict() for step in self.steps],
                "transitions": [transition.to_dict() for transition in self.transitions],
            }
        )

    def matches(self, fingerprint: str | None) -> bool:
        """Whether a run that stored ``fingerprint`` was started under this definition."""
        return fingerprint in (self.fingerprint, self.declared_order_fingerprint)

    # The queries derived from the spec alone are computed once per spec object (it is
    # immutable): the planner asks them on every start and every settled outcome.

    @cached_property
    def mode(self) -> WorkflowMode:
        """Dependency mode when any step has an ``after`` list, else transition mode."""
        if any(step.after for step in self.steps):
            return WorkflowMode.DEPENDENCY
        return WorkflowMode.TRANSITION

    @cached_property
    def step_names(self) -> tuple[str, ...]:
        """Step names in declaration order."""
        return tuple(step.name for step in self.steps)

    def step(self, name: str) -> StepSpec:
        """The step called `name`.

        Raises:
            UnknownStep: the spec declares no such step.
        """
        try:
            return self._steps_by_name[name]
        except KeyError:
            raise UnknownStep(workflow=self.workflow, step=name) from None

    @cached_property
    def entry_steps(self) -> tuple[str, ...]:
        """The roots, in declaration order.

        Transition mode: steps no transition leads to (a valid spec has exactly one).
        Dependency mode: steps without an ``after`` list.
        """
        if self.mode is WorkflowMode.DEPENDENCY:
            return tuple(step.name for step in self.steps if not step.after)
        targets = {transition.to for transition in self.transitions}
        return tuple(name for name in self.step_names if name not in targets)

    @cached_property
    def initial_step(self) -> str | None:
        """The first root, or `None` when there is none."""
        roots = self.entry_steps
        return roots[0] if roots else None

    @cached_property
    def entry_step(self) -> str | None:
        """The single root of a transition workflow; `None` in dependency mode."""
        roots = self.entry_steps
        if self.mode is WorkflowMode.TRANSITION and len(roots) == 1:
            return roots[0]
        return None

    def transitions_from(self, step: str, outcome: Outcome) -> tuple[TransitionSpec, ...]:
        """The routes declared for `step` ending with `outcome`, in declaration order."""
        return tuple(route.transition for route in self._routes.get((step, outcome), ()))

    def select_route(
        self, step: str, outcome: Outcome, state: Mapping[str, JSONValue]
    ) -> Route | None:
        """The route `step` takes after `outcome`, given the run state (see `run_state`).

        The first conditional route whose condition matches wins, in declaration order;
        otherwise the unconditional route; otherwise `None` (no route for this outcome).

        Raises:
            UnknownStep: the spec declares no such step.
        """
        self.step(step)
        fallback: Route | None = None
        for route in self._routes.get((step, outcome), ()):
            condition = route.transition.condition
            if condition is None:
                fallback = fallback or route
            elif condition.matches(state):
                return route
        return fallback

    def dependencies_of(self, step: str) -> tuple[str, ...]:
        """The steps `step` waits for (its ``after`` list).

        Raises:
            UnknownStep: the spec declares no such step.
        """
        return self.step(step).after or ()

    def dependents_of(self, step: str) -> tuple[str, ...]:
        """The steps that wait for `step`, in declaration order.

        Raises:
            UnknownStep: the spec declares no such step.
        """
        self.step(step)
        return self._dependents.get(step, ())

    def edges(self) -> tuple[SpecEdge, ...]:
        """The declared graph edges: transitions in declaration order, then dependencies."""
        edges = [
            SpecEdge(
                id=self._edge_ids[position],
                from_step=t.from_step,
                to=t.to,
                type=EdgeType.TRANSITION,
                outcome=t.on,
                condition=t.condition,
                recovery=t.recovery,
            )
            for position, t in enumerate(self.transitions)
        ]
        for step in self.steps:
            for dependency in step.after or ():
                edges.append(
                    SpecEdge(
                        id=f"{dependency}:dependency:{step.name}",
                        from_step=dependency,
                        to=step.name,
                        type=EdgeType.DEPENDENCY,
                    )
                )
        return tuple(edges)

    def trigger(self, name: str | None = None) -> TriggerSpec:
        """The trigger called `name`; without a name, the only trigger.

        Raises:
            InvalidTrigger: no such trigger, or no name given while there are several.
        """
        if name is None:
            if len(self.triggers) == 1:
                return self.triggers[0]
            raise InvalidTrigger(
                workflow=self.workflow, trigger=None, reason="several triggers, name one"
            )
        for trigger in self.triggers:
            if trigger.name == name:
                return trigger
        raise InvalidTrigger(workflow=self.workflow, trigger=name, reason="not declared")

    def validate_payload(
        self, payload: object, trigger: str | None = None, *, now: datetime | None = None
    ) -> JSONObject:
        """The run input for `payload`, checked against the spec's payload fields.

        Defaults are applied; a ``today_iso8601`` default takes its date from `now` (the
        run's creation time) when given.

        Raises:
            InvalidTrigger: `trigger` is not declared, or is needed and missing.
            PayloadValidationError: the payload breaks the contract; one issue per problem.
        """
        self.trigger(trigger)
        return self._payload_contract.validate(payload, now=now)

    def describe(self) -> str:
        """The workflow's shape for people: triggers, steps, routes and fingerprint."""
        lines = [
            f"workflow {self.workflow}" + (f" (version {self.version})" if self.version else "")
        ]
        lines.append(f"fingerprint {self.fingerprint}")
        lines.append("triggers:")
        for trigger in self.triggers:
            detail = f" {trigger.expression} {trigger.timezone}" if trigger.expression else ""
            if trigger.idempotency:
                detail += f" idempotency={trigger.idempotency.value}"
            lines.append(f"  {trigger.name}  {trigger.type.value}{detail}")
        roots = ", ".join(self.entry_steps)
        lines.append(f"steps ({self.mode.value} mode, entry: {roots}):")
        width = max((len(name) for name in self.step_names), default=0)
        lines.extend(f"  {step.name.ljust(width)}  {step.describe()}" for step in self.steps)
        if self.transitions:
            lines.append("routes:")
            lines.extend(f"  {transition.describe(width)}" for transition in self.transitions)
        return "\n".join(lines)

    @cached_property
    def _steps_by_name(self) -> dict[str, StepSpec]:
        by_name: dict[str, StepSpec] = {}
        for step in self.steps:
            by_name.setdefault(step.name, step)
        return by_name

    @cached_property
    def _edge_ids(self) -> tuple[str, ...]:
        conditional_counts: dict[tuple[str, Outcome], int] = {}
        ids = []
        for t in self.transitions:
            edge_id = f"{t.from_step}:{t.on.value}:{t.to}"
            if t.condition is not None:
                index = conditional_counts.get((t.from_step, t.on), 0)
                conditional_counts[(t.from_step, t.on)] = index + 1
                edge_id += f":condition:{index}"
            ids.append(edge_id)
        return tuple(ids)

    @cached_property
    def _routes(self) -> dict[tuple[str, Outcome], tuple[Route, ...]]:
        """The routes of each ``(step, outcome)``, in declaration order."""
        routes: dict[tuple[str, Outcome], list[Route]] = {}
        for transition, edge_id in zip(self.transitions, self._edge_ids, strict=True):
            key = (transition.from_step, transition.on)
            routes.setdefault(key, []).append(Route(transition, edge_id))
        return {key: tuple(found) for key, found in routes.items()}

    @cached_property
    def _dependents(self) -> dict[str, tuple[str, ...]]:
        """The steps waiting for each step, in declaration order."""
        dependents: dict[str, list[str]] = {}
        for other in self.steps:
            for name in dict.fromkeys(other.after or ()):
                dependents.setdefault(name, []).append(other.name)
        return {name: tuple(found) for name, found in dependents.items()}

    @cached_property
    def _payload_contract(self) -> PayloadContract:
        return PayloadContract.from_fields(self.workflow, self.payload)

    def _declared_entry_issues(self, declared: Mapping[str, JSONValue]) -> list[Issue]:
        issues: list[Issue] = []
        names = set(self.step_names)
        if "entry_steps" in declared:
            entry_steps = declared["entry_steps"]
            assert isinstance(entry_steps, list)
            unknown = [(i, n) for i, n in enumerate(entry_steps) if n not in names]
            for index, name in unknown:
                issues.append(
                    Issue(("entry_steps", index), "unknown_entry_step", f"no step {name!r}")
                )
            if not unknown and not json_equal(entry_steps, list(self.entry_steps)):
                issues.append(
                    Issue(
                        ("entry_steps",),
                        "invalid_entry_steps",
                        f"entry_steps must be the roots {list(self.entry_steps)}",
                    )
                )
        for key, code, expected in (
            ("initial_step", "invalid_initial_step", self.initial_step),
            ("entry_step", "invalid_entry_step", self.entry_step),
        ):
            if key not in declared:
                continue
            value = declared[key]
            if value is not None and value not in names:
                issues.append(Issue((key,), "unknown_step_reference", f"no step {value!r}"))
            elif value != expected:
                issues.append(Issue((key,), code, f"{key} must be {expected!r}"))
        return issues
