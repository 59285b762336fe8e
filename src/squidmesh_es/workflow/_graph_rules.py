"""Rules on how steps follow each other: dependencies, routes, roots and cycles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from squidmesh_es.errors import Issue
from squidmesh_es.workflow._elements import TransitionSpec
from squidmesh_es.workflow._json import is_json_value, is_number
from squidmesh_es.workflow._spec import WorkflowSpec
from squidmesh_es.workflow._vocab import (
    COMPLETE,
    ConditionOperator,
    Outcome,
    StepKind,
    WorkflowMode,
)

Path = tuple[str | int, ...]


def graph_issues(spec: WorkflowSpec) -> list[Issue]:
    """The graph rules `spec` breaks, for its mode (dependency or transition)."""
    rules = _GraphRules(spec)
    rules.dependencies()
    if spec.mode is WorkflowMode.DEPENDENCY:
        rules.dependency_mode()
    else:
        rules.transition_mode()
    return rules.issues


class _GraphRules:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.issues: list[Issue] = []
        self.names = set(spec.step_names)

    def add(self, path: Path, code: str, message: str) -> None:
        self.issues.append(Issue(path, code, message))

    def dependencies(self) -> None:
        graph: dict[str, Sequence[str]] = {}
        for index, step in enumerate(self.spec.steps):
            if step.after is None:
                continue
            at: Path = ("steps", index, "after")
            if not step.after or len(set(step.after)) != len(step.after):
                self.add(
                    at,
                    "invalid_step_dependencies",
                    f"step {step.name!r}: after needs at least one step, each once "
                    "(omit it for a root)",
                )
            for position, dependency in enumerate(step.after):
                if dependency == step.name:
                    self.add(
                        (*at, position),
                        "self_step_dependency",
                        f"step {step.name!r} waits for itself",
                    )
                elif dependency not in self.names:
                    self.add(
                        (*at, position),
                        "unknown_step_dependency",
                        f"step {step.name!r} waits for unknown step {dependency!r}",
                    )
            graph[step.name] = [d for d in step.after if d in self.names and d != step.name]
        cycle = _cycle(graph)
        if cycle:
            self.add(
                ("steps",), "dependency_cycle", f"dependencies form a cycle: {' -> '.join(cycle)}"
            )

    def dependency_mode(self) -> None:
        if self.spec.transitions:
            self.add(
                ("transitions",),
                "dependency_transitions",
                "a workflow with after lists cannot also declare transitions",
            )
        for index, step in enumerate(self.spec.steps):
            if step.is_manual:
                self.add(
                    ("steps", index, "kind"),
                    "manual_step_in_dependency_workflow",
                    f"{step.kind.value} step {step.name!r} needs a transition workflow",
                )

    def transition_mode(self) -> None:
        unconditional: set[tuple[str, Outcome]] = set()
        seen: list[TransitionSpec] = []
        graph: dict[str, list[str]] = {name: [] for name in self.names}
        for index, transition in enumerate(self.spec.transitions):
            self._transition(("transitions", index), transition)
            group = (transition.from_step, transition.on)
            if transition in seen or (transition.condition is None and group in unconditional):
                self.add(
                    ("transitions", index),
                    "duplicate_transition",
                    f"{transition.from_step} on {transition.on.value} has a second "
                    "unconditional route (or the same route twice)",
                )
            if transition.condition is None:
                unconditional.add(group)
            seen.append(transition)
            if transition.from_step in self.names and transition.to in self.names:
                graph[transition.from_step].append(transition.to)
        self._approval_routes()
        cycle = _cycle(graph)
        if cycle:
            self.add(
                ("transitions",),
                "transition_cycle",
                f"transitions form a cycle: {' -> '.join(cycle)}",
            )
        roots = self.spec.entry_steps
        if self.spec.steps and not roots:
            self.add(
                ("entry_steps",), "missing_entry_steps", "every step is the target of a transition"
            )
        elif len(roots) > 1:
            self.add(
                ("entry_step",),
                "invalid_entry_step",
                "a transition workflow has exactly one root; "
                f"no transition leads to {', '.join(roots)}",
            )

    def _transition(self, at: Path, transition: TransitionSpec) -> None:
        source = transition.from_step
        if source not in self.names:
            self.add((*at, "from"), "unknown_transition_source", f"no step {source!r}")
        if transition.to != COMPLETE and transition.to not in self.names:
            self.add((*at, "to"), "unknown_transition_target", f"no step {transition.to!r}")
        if transition.recovery is not None and transition.on is not Outcome.ERROR:
            self.add(
                (*at, "recovery"), "invalid_transition_recovery", "recovery marks error routes only"
            )
        condition = transition.condition
        if condition is None:
            return
        numeric = condition.operator is not ConditionOperator.EQUALS
        if (
            not condition.path
            or not all(condition.path)
            or not is_json_value(condition.value)
            or (numeric and not is_number(condition.value))
        ):
            self.add(
                (*at, "condition"),
                "invalid_transition_condition",
                "a condition needs a non-empty path and a JSON value (a number for "
                "greater_than and less_than)",
            )
        if source in self.names and self.spec.step(source).is_manual:
            self.add(
                (*at, "condition"),
                "manual_step_transition_condition",
                f"routes from {source!r} follow the operator's decision, not a condition",
            )

    def _approval_routes(self) -> None:
        for index, step in enumerate(self.spec.steps):
            if step.kind is StepKind.APPROVAL and not all(
                self.spec.transitions_from(step.name, outcome) for outcome in Outcome
            ):
                self.add(
                    ("steps", index),
                    "missing_approval_transitions",
                    f"approval step {step.name!r} needs an ok route (approve) and an error "
                    "route (reject)",
                )


def _cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle of `graph` as a path that returns to its start, or ``[]``.

    Iterative depth-first search, so a long chain of steps cannot exhaust the stack.
    """
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        trail, successors = [start], [iter(graph.get(start, ()))]
        while successors:
            successor = next(successors[-1], None)
            if successor is None:
                done.add(trail.pop())
                successors.pop()
            elif successor in trail:
                return [*trail[trail.index(successor) :], successor]
            elif successor not in done:
                trail.append(successor)
                successors.append(iter(graph.get(successor, ())))
    return []
