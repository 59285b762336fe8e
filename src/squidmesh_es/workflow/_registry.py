"""The action registry: the host's allowlist from stable action keys to `Step` classes.

Runtime-authored specs name their steps by action key; only this registry turns a key into
code. Nothing is ever imported from a string found in spec data.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from squidmesh_es.errors import ActionNotAllowed, Issue, WorkflowValidationError
from squidmesh_es.workflow._steps import Step

if TYPE_CHECKING:
    from squidmesh_es.workflow._spec import WorkflowSpec

ACTION_KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
"""Action keys: stable, human-chosen names such as ``billing.load_invoice``."""


@dataclass(frozen=True)
class ActionEntry:
    """A registered action: its step class, and whether specs may use it now."""

    step: type[Step]
    enabled: bool = True
    """A disabled action stays known (its runs stay inspectable) but cannot be started."""


class ActionRegistry:
    """Allowlist of the step classes runtime-authored specs may run, by stable action key.

    Example:
        ``ActionRegistry({"billing.load_invoice": LoadInvoice,
        "billing.send_reminder": ActionEntry(SendReminder, enabled=False)})``
    """

    def __init__(self, actions: Mapping[str, type[Step] | ActionEntry] | None = None) -> None:
        """Register `actions`; a bare class is an enabled entry.

        Entries are checked when used, so a bad entry refuses only the specs that name it.
        """
        self._entries: dict[str, ActionEntry] = {
            key: value if isinstance(value, ActionEntry) else ActionEntry(value)
            for key, value in (actions or {}).items()
        }

    def __contains__(self, key: object) -> bool:
        """Whether `key` is registered, enabled or not."""
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        """The registered keys, in registration order."""
        return iter(self._entries)

    def __len__(self) -> int:
        """How many keys are registered."""
        return len(self._entries)

    def refusal(self, key: object) -> str | None:
        """Why `key` cannot be used, as a stable code; `None` when it can.

        Codes: ``missing_action_key``, ``invalid_action_key``, ``unknown_action_key``,
        ``disabled_action_key``, ``incompatible_action_module``.
        """
        if key is None or key == "":
            return "missing_action_key"
        if not isinstance(key, str) or not ACTION_KEY_PATTERN.match(key):
            return "invalid_action_key"
        entry = self._entries.get(key)
        if entry is None:
            return "unknown_action_key"
        if not _runnable(entry.step):
            return "incompatible_action_module"
        if not entry.enabled:
            return "disabled_action_key"
        return None

    def resolve(self, key: str) -> type[Step]:
        """The step class registered under `key`.

        Raises:
            ActionNotAllowed: the key is missing, malformed, unknown, disabled, or maps to
                something that is not a concrete `Step` class; `reason` holds the code.
        """
        reason = self.refusal(key)
        if reason is not None:
            raise ActionNotAllowed(key if isinstance(key, str) else repr(key), reason)
        return self._entries[key].step

    def resolve_spec(self, spec: WorkflowSpec) -> dict[str, type[Step]]:
        """The step class of every action key `spec` uses, compensations included.

        Raises:
            WorkflowValidationError: some key is refused; one issue per refusal.
        """
        issues = action_issues(spec, self)
        if issues:
            raise WorkflowValidationError(
                f"workflow {spec.workflow!r} uses actions the registry refuses", issues
            )
        keys = [step.action for step in spec.steps if step.action is not None]
        keys += [s.compensate.action for s in spec.steps if s.compensate and s.compensate.action]
        return {key: self.resolve(key) for key in keys}


def action_issues(
    spec: WorkflowSpec, registry: ActionRegistry, *, class_refs: bool = False
) -> list[Issue]:
    """The registry's refusals for `spec`'s custom steps and compensations.

    A spec that runs from data must name an action key on every custom step: an
    implementation reference cannot be resolved, since nothing is imported from data. With
    ``class_refs`` (a class-declared workflow, whose classes are the code), a step with a
    reference and no action key is accepted; the registry only narrows action keys.
    """
    issues: list[Issue] = []
    for index, step in enumerate(spec.steps):
        if step.kind == "custom" and not (class_refs and step.action is None and step.ref):
            reason = registry.refusal(step.action)
            if reason is not None:
                issues.append(
                    Issue(
                        ("steps", index, "action"), reason, _message(step.name, step.action, reason)
                    )
                )
        compensate = step.compensate
        if compensate is not None and not (class_refs and compensate.action is None):
            reason = registry.refusal(compensate.action)
            if reason is not None:
                issues.append(
                    Issue(
                        ("steps", index, "compensate", "action"),
                        reason,
                        _message(f"{step.name} compensation", compensate.action, reason),
                    )
                )
    return issues


def _message(what: str, key: str | None, reason: str) -> str:
    if key is None:
        return f"step {what!r} needs an action key the registry knows"
    return f"step {what!r}: action {key!r} is refused ({reason})"


def _runnable(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Step) and not inspect.isabstract(value)
