"""Saga compensation as readers see it: where a rollback stands, and the policy behind it.

Everything here is derived from a snapshot's planned and applied runnables, so a UI never
re-derives it and the graph and the explanation agree. The recovery policy is read from the
``recovery`` persisted with each runnable (guide 2.9), not from the code, so what a rollback
can undo stays visible after a deploy changed the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import JsonValue

from squidmesh_es.read_model._json import JsonMap, ReadModel, to_json_map

if TYPE_CHECKING:  # the snapshot module defines the runnable views and imports this one
    from squidmesh_es.read_model._snapshot import AppliedRunnable, RunnableView

__all__ = [
    "CompensationView",
    "build_compensation_view",
    "completed_steps",
    "is_final",
    "recovery_policy",
]


class CompensationView(ReadModel):
    """A run's rollback: the failure that began it and where each step to undo stands.

    Step names are the completed steps being undone (``authorize_payment``), not the callback
    nodes (``compensate:authorize_payment``).
    """

    failed_step: str | None
    """The step whose failure started the rollback."""
    failure: JsonMap
    """The failure as every callback receives it: ``{code, step, runnable_key, reason}``."""
    compensated: list[str]
    """Steps whose callback completed, in the order the callbacks ran."""
    failed: list[str]
    """Steps whose callback failed; the rollback went on without undoing them."""
    pending: list[str]
    """Steps a live rollback has still to undo, in the order it will: the one whose callback
    is in flight first, then completed compensatable steps not handed to a callback yet."""
    abandoned: list[str]
    """Steps a terminal run ended without undoing (a rollback cut short, e.g. by a cancel)."""
    in_flight: list[str]
    """Other worker steps planned before the rollback began and not applied yet. The rollback
    ends only after them; one that completes and declares a callback is undone too. Built-ins
    still ahead (a wait, log, pause or approval) run nothing and are left out."""


def is_final(applied: AppliedRunnable) -> bool:
    """Whether an applied result is a step's last word: not a retried try, not a deferral."""
    if applied.outcome not in ("ok", "error"):
        return False
    return applied.transition is None or "retry_runnable_key" not in applied.transition


def completed_steps(
    planned: Sequence[RunnableView], applied: Sequence[AppliedRunnable]
) -> list[RunnableView]:
    """The forward runnables that completed ok, the latest per step, by completion order.

    Compensation callbacks are left out: they undo steps, they are not steps to undo. A step
    that completed more than once counts once, at its latest completion, as the engine does.
    """
    by_key = {r.runnable_key: r for r in planned}
    latest: dict[str, RunnableView] = {}
    for result in applied:  # application order
        runnable = by_key.get(result.runnable_key)
        if runnable is None or runnable.compensation is not None or result.outcome != "ok":
            continue
        latest.pop(runnable.step, None)
        latest[runnable.step] = runnable
    return list(latest.values())


def _compensatable(runnable: RunnableView) -> bool:
    """Whether the persisted policy lets a rollback undo the runnable's step."""
    recovery = runnable.recovery or {}
    return (
        runnable.dynamic is None
        and recovery.get("compensate") is True
        and recovery.get("compensatable") is not False
    )


def _worker_step(runnable: RunnableView) -> bool:
    """Whether a worker runs the runnable.

    The planner persists a recovery policy with every worker step and dynamic node, and
    never with a built-in.
    """
    return runnable.recovery is not None or runnable.dynamic is not None


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def build_compensation_view(
    planned: Sequence[RunnableView], applied: Sequence[AppliedRunnable], *, terminal: bool
) -> CompensationView | None:
    """The rollback of a run, or ``None`` when the run never began one."""
    callbacks = [r for r in planned if r.compensation is not None]
    if not callbacks:
        return None
    by_key = {r.runnable_key: r for r in callbacks}
    compensated: list[str] = []
    failed: list[str] = []
    for result in applied:  # the order the callbacks ran in
        callback = by_key.get(result.runnable_key)
        if callback is None or callback.compensation is None or not is_final(result):
            continue
        target = str(callback.compensation.get("step"))
        (compensated if result.outcome == "ok" else failed).append(target)
    handed = {str((r.compensation or {}).get("step")) for r in callbacks}
    left = _unique(
        [str((r.compensation or {}).get("step")) for r in callbacks if not r.applied]
        + [
            r.step
            for r in reversed(completed_steps(planned, applied))
            if _compensatable(r) and r.step not in handed
        ]
    )
    failure = to_json_map(callbacks[0].input.get("failure"))
    step = failure.get("step")
    return CompensationView(
        failed_step=step if isinstance(step, str) else None,
        failure=failure,
        compensated=compensated,
        failed=failed,
        pending=[] if terminal else left,
        abandoned=left if terminal else [],
        in_flight=(
            []
            if terminal
            else _unique(
                r.step
                for r in planned
                if not r.applied and r.compensation is None and _worker_step(r)
            )
        ),
    )


def recovery_policy(
    planned: Sequence[RunnableView],
    applied: Sequence[AppliedRunnable],
    compensation: CompensationView | None,
) -> JsonMap:
    """The recovery policy of the run's completed steps, grouped the way operators ask.

    ``compensatable``: a rollback undoes them (they declare a callback and are compensatable).
    ``not_compensatable``: a rollback leaves them as they are (no callback, marked not
    compensatable, or a dynamic node). ``irreversible``: marked irreversible, so replaying
    them needs review. ``will_not_be_undone``: the steps that stay done: the not
    compensatable ones, plus, once a rollback ran, those whose callback failed or that the
    run ended without undoing. Built-in steps (no persisted policy) have nothing to undo and
    are left out.
    """
    compensatable: list[str] = []
    not_compensatable: list[str] = []
    irreversible: list[str] = []
    stays: set[str] = set()
    if compensation is not None:
        stays |= set(compensation.failed) | set(compensation.abandoned)
    order: list[str] = []
    for runnable in completed_steps(planned, applied):
        if runnable.recovery is None:
            continue
        order.append(runnable.step)
        if runnable.recovery.get("irreversible") is True:
            irreversible.append(runnable.step)
        if _compensatable(runnable):
            compensatable.append(runnable.step)
        else:
            not_compensatable.append(runnable.step)
            stays.add(runnable.step)
    return {
        "compensatable": list[JsonValue](compensatable),
        "not_compensatable": list[JsonValue](not_compensatable),
        "irreversible": list[JsonValue](irreversible),
        "will_not_be_undone": list[JsonValue](n for n in order if n in stays),
    }
