"""Saga compensation: which completed steps to undo, in which order, and with what input.

When a run fails after steps that declare a compensation completed, each such step is undone
by its callback, the most recently completed first, one callback at a time. A callback is an
ordinary runnable named ``compensate:<step>`` with one attempt (the forward step's retry
policy does not apply); its failure is recorded and the rollback goes on with the next one.
Everything here is derived from the run's facts, so a reload decides the same way.
"""

from __future__ import annotations

from datetime import datetime

from squidmesh_es.domain._journal import JSONDict
from squidmesh_es.domain._keys import runnable_key
from squidmesh_es.domain._run import Runnable, WorkflowRun, is_side_work
from squidmesh_es.workflow import WorkflowSpec

__all__ = [
    "COMPENSATE_PREFIX",
    "compensation_failure",
    "compensation_pending",
    "compensation_summary",
    "is_compensating",
    "next_compensation",
]

COMPENSATE_PREFIX = "compensate:"
"""Compensation runnables are named after the step they undo: ``compensate:<step>``."""


def is_compensating(run: WorkflowRun) -> bool:
    """Whether the run has started rolling back."""
    return any(p.get("compensation") is not None for p in run.planned.values())


def compensation_pending(run: WorkflowRun) -> bool:
    """Whether a compensation callback is planned and its result not applied yet."""
    return any(
        p.get("compensation") is not None and key not in run.applied
        for key, p in run.planned.items()
    )


def compensation_failure(run: WorkflowRun) -> JSONDict | None:
    """The failure that started the rollback, as carried by its first callback's input."""
    for planned in run.planned.values():
        if planned.get("compensation") is not None:
            failure = (planned.get("input_from") or planned.get("input") or {}).get("failure")
            return failure if isinstance(failure, dict) else None
    return None


def next_compensation(
    spec: WorkflowSpec, run: WorkflowRun, failure: JSONDict, *, now: datetime
) -> Runnable | None:
    """The callback to run next: for the latest completed step not compensated yet.

    Only steps of the definition that completed ok, declare a compensation and are
    compensatable take part; a step that completed several times is undone once, for its
    latest completion.
    """
    undone = {
        str(p["compensation"]["step"])
        for p in run.planned.values()
        if p.get("compensation") is not None
    }
    latest: dict[str, JSONDict] = {}
    for applied in run.applied.values():  # application order
        planned = run.planned.get(str(applied["runnable_key"]), {})
        if applied["outcome"] != "ok" or is_side_work(planned):
            continue
        name = str(applied["step"])
        if name not in spec.step_names:
            continue
        step = spec.step(name)
        if step.compensate is None or not step.compensatable:
            continue
        latest.pop(name, None)
        latest[name] = applied
    candidates = [name for name in latest if name not in undone]
    if not candidates:
        return None
    name = candidates[-1]
    applied = latest[name]
    origin_key = str(applied["runnable_key"])
    step = spec.step(name)
    callback = f"{COMPENSATE_PREFIX}{name}"
    key = runnable_key(run.run_id, callback, 1)
    compensate = step.compensate
    assert compensate is not None
    return Runnable(
        runnable_key=key,
        idempotency_key=key,
        step=callback,
        attempt_number=1,
        input=None,
        # The undone step's input and output are the run's already: refer to them.
        input_from={"undo": origin_key, "output_key": step.output, "failure": failure},
        visible_at=now,
        queue=run.queue,
        action=compensate.action,
        compensation={"step": name, "runnable_key": origin_key},
    )


def compensation_summary(run: WorkflowRun) -> JSONDict:
    """Which steps were compensated and which callbacks failed, in the order they ran.

    Only a callback's final outcome counts: a deferral is not a failure, its continuation
    has the last word.
    """
    compensated: list[str] = []
    failed: list[str] = []
    for applied in run.applied.values():
        compensation = run.planned[str(applied["runnable_key"])].get("compensation")
        if compensation is None or applied["outcome"] not in ("ok", "error"):
            continue
        (compensated if applied["outcome"] == "ok" else failed).append(str(compensation["step"]))
    return {"compensated": compensated, "failed": failed}
