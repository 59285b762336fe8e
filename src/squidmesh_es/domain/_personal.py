"""Where a run keeps personal data: the fields an erasable run seals and forgetting erases.

One list serves both sides of crypto-shredding (``SquidMesh.forget_run``): the runtime's
mapper encrypts these fields of an erasable run's events and snapshots under the run's own
data key, and ``RunDataForgotten`` erases the same fields from the state in memory. Paths
are dotted; ``*`` stands for every value of a mapping or every item of a list.

Not listed, so stored in clear whatever the run: the workflow, trigger, queue, step names,
runnable keys, times, statuses, routes, the start context's parent and schedule links, and
errors (which the redaction policy sanitizes before they are stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["PERSONAL_EVENT_FIELDS", "PERSONAL_STATE_FIELDS", "map_paths"]

_RUN = "squidmesh.WorkflowRun."

PERSONAL_STATE_FIELDS: Final = (
    "input",
    "start_context.index",
    "planned.*.input",
    "applied.*.result",
    "command_history.*.payload",
    "command_history.*.metadata",
    "command_history.*.comment",
    "child_runs.*.metadata",
    "dynamic_work.*.nodes.*.input",
    "dynamic_work.*.metadata",
)
"""The personal fields of a `WorkflowRun`'s state (and so of its snapshots)."""

PERSONAL_EVENT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    f"{_RUN}RunStarted": ("input", "context.index"),
    f"{_RUN}CommandReceived": ("payload", "metadata", "comment"),
    f"{_RUN}RunnablesPlanned": ("runnables.*.input",),
    f"{_RUN}RunnableApplied": ("result",),
    f"{_RUN}ManualStepResolved": ("result", "metadata"),
    f"{_RUN}ChildRunStarted": ("metadata",),
    f"{_RUN}DynamicWorkRecorded": ("nodes.*.input", "metadata"),
    f"{_RUN}Snapshot": tuple(f"state.{path}" for path in PERSONAL_STATE_FIELDS),
}
"""The personal fields of each stored form of a run, by topic: its events and snapshots."""


def map_paths(value: Any, paths: Iterable[str], change: Callable[[Any], Any]) -> Any:
    """``value`` with ``change`` applied at each path's end (``None`` values are left alone).

    Containers along a path are copied only where something changed, so the original is
    never mutated and an unchanged value comes back as the same object.
    """
    for path in paths:
        value = _map(value, path.split("."), change)
    return value


def _map(value: Any, parts: list[str], change: Callable[[Any], Any]) -> Any:
    if not parts:
        return value if value is None else change(value)
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, dict):
            mapped = {k: _map(v, rest, change) for k, v in value.items()}
            same = all(mapped[k] is v for k, v in value.items())
            return value if same else mapped
        if isinstance(value, list):
            items = [_map(v, rest, change) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value
    if isinstance(value, dict) and head in value:
        inner = _map(value[head], rest, change)
        return value if inner is value[head] else {**value, head: inner}
    return value
