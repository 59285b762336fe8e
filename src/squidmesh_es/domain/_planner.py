"""The planner: from a run's facts and its workflow spec, decide what the run does next.

Pure domain code. It acts on a `WorkflowRun` through its commands, so every decision becomes
pending events of that run, and returns what the caller must do outside the run: which new
runnables to schedule on the dispatch queue, which log records to write once the commit
stands, and whether the run ended (so the queue can fence its leftover attempts).

Built-in steps run no user code. A wait step is applied as soon as it is planned and makes
its successors visible ``duration`` later; a log step is dispatched like a worker step, so a
worker claims it, writes its record after the commit that completes it, and it shows in
history as an attempt; pause and approval steps stop the run at a manual boundary.

A step that fails for good with no error route fails the run, unless completed steps
declare compensations: then the run rolls back first (`squidmesh_es.domain._compensation`).
Scheduled dynamic nodes and compensation callbacks are runnables outside the definition;
a run completes only once nothing it planned is pending.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from squidmesh_es.domain._compensation import (
    compensation_failure,
    compensation_pending,
    compensation_summary,
    is_compensating,
    next_compensation,
)
from squidmesh_es.domain._journal import JSONDict
from squidmesh_es.domain._keys import runnable_key
from squidmesh_es.domain._run import Runnable, WorkflowRun, is_side_work
from squidmesh_es.domain._vocab import ManualKind, TerminalStatus
from squidmesh_es.errors import MissingInputPath, RunTerminal, UnknownAttempt
from squidmesh_es.workflow import (
    COMPLETE,
    NO_RETRY,
    JSONValue,
    Outcome,
    RetryPolicy,
    Route,
    StepKind,
    StepSpec,
    WorkflowMode,
    WorkflowSpec,
    run_state,
)

__all__ = [
    "LogRecord",
    "Progress",
    "apply_outcome",
    "carry_out_builtin",
    "plan_deferral",
    "plan_entry",
    "plan_retry",
    "resolve_boundary",
    "retry_policy",
]


_DISPATCHED = frozenset({StepKind.CUSTOM, StepKind.LOG})
"""Step kinds a worker claims as attempts: a log line comes from the worker, after the
commit that completes its step, like any other step's effect."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A log step's record, written through `logging` once the commit holding it stands."""

    step: str
    level: str
    message: str
    runnable_key: str


@dataclass(slots=True)
class Progress:
    """What a decision asks of the world outside the run aggregate."""

    to_schedule: list[Runnable] = field(default_factory=list)
    """New runnables a worker must execute: schedule each on the run's queue."""
    logs: list[LogRecord] = field(default_factory=list)
    ended: TerminalStatus | None = None
    """Set when the decision ended the run; the queue must close it."""

    def merge(self, other: Progress) -> None:
        """Add `other`'s requests to these."""
        self.to_schedule.extend(other.to_schedule)
        self.logs.extend(other.logs)
        self.ended = self.ended or other.ended


def plan_entry(spec: WorkflowSpec, run: WorkflowRun, *, now: datetime) -> Progress:
    """Plan the entry steps of a run that has just started."""
    progress = Progress()
    _plan_steps(spec, run, list(spec.entry_steps), visible_at=now, now=now, progress=progress)
    _complete_if_done(spec, run, now=now, progress=progress)
    return progress


def apply_outcome(
    spec: WorkflowSpec,
    run: WorkflowRun,
    key: str,
    *,
    outcome: Outcome,
    now: datetime,
    output: JSONDict | None = None,
    error: JSONDict | None = None,
    claim: JSONDict | None = None,
) -> Progress:
    """Apply a runnable's final outcome to the run and plan what follows it.

    An ok outcome stores the step's output in the context (under its output key, if any);
    the route is chosen on the state that includes it. An error outcome takes the step's
    error route, or fails the run. ``claim`` holds the facts of the claim that produced the
    outcome, kept in the run's history.

    Raises:
        RunTerminal: the run ended.
        UnknownAttempt: the runnable was never planned for this run.
    """
    progress = Progress()
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    if key in run.applied:
        return progress
    planned = _planned(run, key)
    step_name = str(planned["step"])
    if is_side_work(planned):
        _apply_side_work(spec, run, key, step_name, outcome, output, error, claim, now, progress)
        return progress
    step = spec.step(step_name)
    delta = step.place_output({}, output or {}) if outcome is Outcome.OK else {}
    if is_compensating(run):
        # A sibling that was in flight when the rollback began: record it, plan nothing.
        run.apply_result(
            key, outcome=outcome.value, result=delta, error=error, claim=claim, now=now
        )
        _continue_compensation(spec, run, now=now, progress=progress)
        return progress
    if spec.mode is WorkflowMode.DEPENDENCY:
        run.apply_result(
            key, outcome=outcome.value, result=delta, error=error, claim=claim, now=now
        )
        if outcome is Outcome.ERROR:
            _fail(spec, run, step_name, key, error, now=now, progress=progress)
            return progress
        ready = [d for d in spec.dependents_of(step_name) if _dependencies_met(spec, run, d)]
        _plan_ready(spec, run, ready, earliest=now, now=now, progress=progress)
        _complete_if_done(spec, run, now=now, progress=progress)
        return progress
    state: JSONDict = {}  # only a route condition reads the state
    if any(t.condition is not None for t in spec.transitions_from(step_name, outcome)):
        state = run_state(run.input, {**run.context, **delta, **run.start_context})
    route = spec.select_route(step_name, outcome, state)
    run.apply_result(
        key,
        outcome=outcome.value,
        result=delta,
        error=error,
        transition=route.to_dict() if route is not None else None,
        claim=claim,
        now=now,
    )
    _follow(spec, run, step_name, key, outcome, route, error, now=now, progress=progress)
    return progress


def plan_retry(
    spec: WorkflowSpec,
    run: WorkflowRun,
    key: str,
    *,
    error: JSONDict,
    visible_at: datetime,
    now: datetime,
    claim: JSONDict | None = None,
) -> Runnable:
    """Record a failed try of ``key`` and plan its next try, visible from ``visible_at``.

    The failed try is applied as an error whose transition names its retry, so the run's
    history keeps every attempt; the retry runnable keeps the step's input.

    Raises:
        RunTerminal: the run ended.
        UnknownAttempt: the runnable was never planned for this run.
    """
    failed = _planned(run, key)
    attempt = int(failed["attempt_number"]) + 1
    if is_side_work(failed):
        retry = replace(
            Runnable.from_state(failed),
            runnable_key=runnable_key(run.run_id, str(failed["step"]), attempt),
            attempt_number=attempt,
            visible_at=visible_at,
        )
    else:
        step = spec.step(str(failed["step"]))
        retry = replace(
            _runnable(run, step, attempt=attempt, visible_at=visible_at, now=now),
            input=failed.get("input"),
            input_from=failed.get("input_from"),
        )
    run.apply_result(
        key,
        outcome=Outcome.ERROR.value,
        error=error,
        transition={"retry_runnable_key": retry.runnable_key, "retry_visible_at": visible_at},
        claim=claim,
        now=now,
    )
    run.plan([retry], now=now)
    return retry


def resolve_boundary(
    spec: WorkflowSpec,
    run: WorkflowRun,
    boundary: JSONDict,
    *,
    outcome: Outcome,
    now: datetime,
    output: JSONDict | None = None,
    error: JSONDict | None = None,
) -> Progress:
    """Apply an operator's resolution of the manual ``boundary`` the run was paused at.

    The routes persisted with the pause are followed, not the current definition's, so a
    deploy between pause and resolution cannot change where an approval leads. Call it after
    `WorkflowRun.resolve_manual`, with the manual state read before that call.
    """
    progress = Progress()
    metadata = boundary.get("metadata") or {}
    key = str(metadata["runnable_key"])
    step_name = str(boundary["step"])
    step = spec.step(step_name)
    delta = step.place_output({}, output or {})  # a rejection's decision is kept too
    routes = metadata.get("routes") or {}
    persisted = routes.get(outcome.value)
    if is_compensating(run):
        # The rollback began while the run waited here: the decision is kept, and leads
        # nowhere, as for a branch that completes during a rollback.
        run.apply_result(key, outcome=outcome.value, result=delta, error=error, now=now)
        _continue_compensation(spec, run, now=now, progress=progress)
        return progress
    run.apply_result(
        key, outcome=outcome.value, result=delta, error=error, transition=persisted, now=now
    )
    if persisted is None:
        _follow(spec, run, step_name, key, outcome, None, error, now=now, progress=progress)
    elif persisted.get("to") == COMPLETE:
        _end(run, TerminalStatus.COMPLETED, None, now=now, progress=progress)
    else:
        target = str(persisted["to"])
        _plan_steps(spec, run, [target], visible_at=now, now=now, progress=progress)
    return progress


def plan_deferral(
    spec: WorkflowSpec,
    run: WorkflowRun,
    key: str,
    *,
    reason: JSONValue,
    delay: timedelta,
    now: datetime,
    claim: JSONDict | None = None,
) -> Runnable:
    """Record that ``key`` deferred itself, and plan the same step again after ``delay``.

    Not a failure: the continuation keeps the attempt number (no retry budget is spent) and
    the input, under a new runnable key ``<key>:deferred:<n>``.
    """
    deferred = _planned(run, key)
    base = runnable_key(run.run_id, str(deferred["step"]), int(deferred["attempt_number"]))
    count = sum(1 for k in run.planned if k.startswith(f"{base}:deferred:"))
    visible_at = now + delay
    if is_side_work(deferred):
        again = replace(Runnable.from_state(deferred), visible_at=visible_at)
    else:
        again = replace(
            _runnable(
                run,
                spec.step(str(deferred["step"])),
                attempt=int(deferred["attempt_number"]),
                visible_at=visible_at,
                now=now,
            ),
            input=deferred.get("input"),
            input_from=deferred.get("input_from"),
        )
    again = replace(
        again,
        runnable_key=f"{base}:deferred:{count + 1}",
        deferred={
            "reason": reason,
            "delay_ms": delay // timedelta(milliseconds=1),
            "deferred_from": key,
        },
    )
    run.apply_result(
        key,
        outcome="deferred",
        error={"code": "deferred", "reason": reason},
        transition={"deferred_runnable_key": again.runnable_key, "visible_at": visible_at},
        claim=claim,
        now=now,
    )
    run.plan([again], now=now)
    return again


# -- following routes ---------------------------------------------------------------------


def _follow(
    spec: WorkflowSpec,
    run: WorkflowRun,
    step_name: str,
    key: str,
    outcome: Outcome,
    route: Route | None,
    error: JSONDict | None,
    *,
    now: datetime,
    progress: Progress,
) -> None:
    if route is None:
        if outcome is Outcome.OK and not spec.transitions_from(step_name, Outcome.OK):
            _end(run, TerminalStatus.COMPLETED, None, now=now, progress=progress)
        elif outcome is Outcome.OK:
            reason = {"code": "no_matching_transition", "message": "no route matched"}
            _fail(spec, run, step_name, key, reason, now=now, progress=progress)
        else:
            _fail(spec, run, step_name, key, error, now=now, progress=progress)
        return
    if route.to == COMPLETE:
        _end(run, TerminalStatus.COMPLETED, None, now=now, progress=progress)
        return
    _plan_steps(spec, run, [route.to], visible_at=now, now=now, progress=progress)


def _dependencies_met(spec: WorkflowSpec, run: WorkflowRun, step: str) -> bool:
    done = {a["step"] for a in run.applied.values() if a["outcome"] == Outcome.OK.value}
    planned = {p["step"] for p in run.planned.values()}
    return step not in planned and all(d in done for d in spec.dependencies_of(step))


def _plan_ready(
    spec: WorkflowSpec,
    run: WorkflowRun,
    steps: list[str],
    *,
    earliest: datetime,
    now: datetime,
    progress: Progress,
) -> None:
    """Plan dependents whose prerequisites all completed, each when its waits allow.

    A wait among a step's prerequisites makes it visible ``duration`` after the wait
    completed, even when another prerequisite completed later (as Squid Mesh anchors it);
    never before ``earliest``.
    """
    by_time: dict[datetime, list[str]] = {}
    for name in steps:
        by_time.setdefault(_visible_after_waits(spec, run, name, earliest), []).append(name)
    for visible_at, names in sorted(by_time.items()):
        if run.is_terminal:
            return
        _plan_steps(spec, run, names, visible_at=visible_at, now=now, progress=progress)


def _visible_after_waits(
    spec: WorkflowSpec, run: WorkflowRun, step: str, earliest: datetime
) -> datetime:
    visible_at = earliest
    waits = {d for d in spec.dependencies_of(step) if spec.step(d).kind is StepKind.WAIT}
    for applied in run.applied.values():
        if applied["step"] in waits and applied["outcome"] == Outcome.OK.value:
            duration = spec.step(str(applied["step"])).duration or timedelta(0)
            visible_at = max(visible_at, applied["applied_at"] + duration)
    return visible_at


def _complete_if_done(
    spec: WorkflowSpec, run: WorkflowRun, *, now: datetime, progress: Progress
) -> None:
    """In dependency mode the run completes once every planned runnable is applied."""
    if run.is_terminal or spec.mode is not WorkflowMode.DEPENDENCY:
        return
    if run.planned and not run.pending_runnables() and run.manual_state is None:
        _end(run, TerminalStatus.COMPLETED, None, now=now, progress=progress)


# -- planning steps -----------------------------------------------------------------------


def _plan_steps(
    spec: WorkflowSpec,
    run: WorkflowRun,
    steps: list[str],
    *,
    visible_at: datetime,
    now: datetime,
    progress: Progress,
) -> None:
    """Plan ``steps``; waits and manual steps due now are carried out on the spot.

    Carrying out a wait may plan its successors. Worker steps and log steps go to the queue.
    """
    state: JSONDict | None = None  # built for the first step that binds its input
    planned: list[tuple[StepSpec, Runnable]] = []
    for name in steps:
        step = spec.step(name)
        if step.input is not None:
            if state is None:
                state = run_state(run.input, run.context)
            try:
                step.select_input(state)  # a missing bound path fails the run before planning
            except MissingInputPath as exc:
                _fail(spec, run, name, None, exc.to_dict(), now=now, progress=progress)
                return
        runnable = _runnable(run, step, attempt=1, visible_at=visible_at, now=now)
        planned.append((step, runnable))
    run.plan([runnable for _, runnable in planned], now=now)
    for step, runnable in planned:
        if run.is_terminal:
            return
        if step.kind in _DISPATCHED or runnable.visible_at > now:
            # Worker and log steps, and built-ins that a wait made future, go through the queue.
            progress.to_schedule.append(runnable)
        else:
            _carry_out_builtin(spec, run, step, runnable, now=now, progress=progress)


def carry_out_builtin(
    spec: WorkflowSpec,
    run: WorkflowRun,
    key: str,
    *,
    now: datetime,
    claim: JSONDict | None = None,
) -> Progress:
    """Carry out a built-in step a worker claimed once it became visible.

    ``claim`` holds the facts of that claim, kept in the run's history.

    Raises:
        RunTerminal: the run ended.
        UnknownAttempt: the runnable was never planned for this run.
    """
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    progress = Progress()
    planned = _planned(run, key)
    if key in run.applied:
        return progress
    if is_compensating(run):
        # A wait, log or manual step that came due during a rollback: nothing follows it.
        run.apply_result(key, outcome=Outcome.OK.value, result={}, claim=claim, now=now)
        _continue_compensation(spec, run, now=now, progress=progress)
        return progress
    step = spec.step(str(planned["step"]))
    runnable = Runnable(
        runnable_key=key,
        step=step.name,
        attempt_number=int(planned["attempt_number"]),
        input=planned.get("input"),
        input_from=planned.get("input_from"),
        visible_at=now,
        queue=run.queue,
    )
    _carry_out_builtin(spec, run, step, runnable, now=now, progress=progress, claim=claim)
    _complete_if_done(spec, run, now=now, progress=progress)
    return progress


def _carry_out_builtin(
    spec: WorkflowSpec,
    run: WorkflowRun,
    step: StepSpec,
    runnable: Runnable,
    *,
    now: datetime,
    progress: Progress,
    claim: JSONDict | None = None,
) -> None:
    if step.kind in (StepKind.WAIT, StepKind.LOG):
        _carry_out_inline(spec, run, step, runnable, now=now, progress=progress, claim=claim)
    else:
        _pause(spec, run, step, runnable, now=now)


def _carry_out_inline(
    spec: WorkflowSpec,
    run: WorkflowRun,
    step: StepSpec,
    runnable: Runnable,
    *,
    now: datetime,
    progress: Progress,
    claim: JSONDict | None = None,
) -> None:
    """Apply a wait or log step; a wait delays the visibility of what follows."""
    if step.kind is StepKind.LOG:
        level = step.level.value if step.level is not None else "info"
        progress.logs.append(LogRecord(step.name, level, step.message or "", runnable.runnable_key))
        follow_at = runnable.visible_at
    else:
        follow_at = runnable.visible_at + (step.duration or timedelta(0))
    key = runnable.runnable_key
    if spec.mode is WorkflowMode.DEPENDENCY:
        run.apply_result(key, outcome=Outcome.OK.value, result={}, claim=claim, now=now)
        ready = [d for d in spec.dependents_of(step.name) if _dependencies_met(spec, run, d)]
        _plan_ready(spec, run, ready, earliest=runnable.visible_at, now=now, progress=progress)
        return
    state = run_state(run.input, run.context)
    route = spec.select_route(step.name, Outcome.OK, state)
    run.apply_result(
        key,
        outcome=Outcome.OK.value,
        result={},
        transition=route.to_dict() if route is not None else None,
        claim=claim,
        now=now,
    )
    if route is not None and route.to != COMPLETE:
        _plan_steps(spec, run, [route.to], visible_at=follow_at, now=now, progress=progress)
    else:
        _follow(spec, run, step.name, key, Outcome.OK, route, None, now=now, progress=progress)


def _pause(
    spec: WorkflowSpec, run: WorkflowRun, step: StepSpec, runnable: Runnable, *, now: datetime
) -> None:
    """Stop at a manual boundary, persisting the routes its resolutions will take."""
    state = run_state(run.input, run.context)
    routes: JSONDict = {}
    for outcome in (Outcome.OK, Outcome.ERROR):
        route = spec.select_route(step.name, outcome, state)
        routes[outcome.value] = route.to_dict() if route is not None else None
    kind = ManualKind.APPROVAL if step.kind is StepKind.APPROVAL else ManualKind.PAUSE
    metadata: JSONDict = {
        "runnable_key": runnable.runnable_key,
        "output": step.output,
        "routes": routes,
    }
    run.pause(step.name, kind=kind, now=now, metadata=metadata)


def _runnable(
    run: WorkflowRun,
    step: StepSpec,
    *,
    attempt: int,
    visible_at: datetime,
    now: datetime,
) -> Runnable:
    """A runnable of a declared step, its input referring to the run state as it is now."""
    rid = str(run.run_id)
    first = runnable_key(rid, step.name, 1)
    key = first if attempt == 1 else runnable_key(rid, step.name, attempt)
    input_from: JSONDict = {"applied": len(run.applied)}
    if step.input is not None:
        input_from["select"] = [binding.to_dict() for binding in step.input]
    recovery: JSONDict | None = None
    if step.kind is StepKind.CUSTOM:
        recovery = {
            "irreversible": step.irreversible,
            "compensatable": step.compensatable,
            "compensate": step.compensate is not None,
        }
    deadline: JSONDict | None = None
    if step.deadline is not None:
        due_at = visible_at + step.deadline.within
        deadline = {
            "scheduled_at": now,
            "due_at": due_at,
            "due_soon_at": (
                due_at - step.deadline.due_soon if step.deadline.due_soon is not None else None
            ),
            "escalation": (
                step.deadline.escalation.value if step.deadline.escalation is not None else None
            ),
        }
    return Runnable(
        runnable_key=key,
        idempotency_key=first,
        step=step.name,
        attempt_number=attempt,
        input=None,
        input_from=input_from,
        visible_at=visible_at,
        queue=run.queue,
        recovery=recovery,
        deadline=deadline,
        action=step.action,
    )


# -- ending -------------------------------------------------------------------------------


def _fail(
    spec: WorkflowSpec,
    run: WorkflowRun,
    step: str,
    key: str | None,
    reason: JSONDict | None,
    *,
    now: datetime,
    progress: Progress,
) -> None:
    """Fail the run, or roll it back first when completed steps declare compensations."""
    if is_compensating(run):
        _continue_compensation(spec, run, now=now, progress=progress)
        return
    error: JSONDict = {"code": "step_failed", "step": step, "runnable_key": key, "reason": reason}
    first = next_compensation(spec, run, error, now=now)
    if first is None:
        _end(run, TerminalStatus.FAILED, error, now=now, progress=progress)
        return
    run.plan([first], now=now)
    progress.to_schedule.append(first)


def _continue_compensation(
    spec: WorkflowSpec, run: WorkflowRun, *, now: datetime, progress: Progress
) -> None:
    """Plan the next callback, or fail the run once nothing is left to undo or wait for.

    Worker steps still pending may be running on another worker: the rollback waits for
    them and undoes them in turn. Built-ins still ahead (a wait, log, pause or approval) run
    nothing, so they do not hold the run open; the run's end fences them.
    """
    if run.is_terminal or compensation_pending(run):
        return
    failure = compensation_failure(run) or {"code": "step_failed"}
    following = next_compensation(spec, run, failure, now=now)
    if following is not None:
        run.plan([following], now=now)
        progress.to_schedule.append(following)
    elif not _worker_steps_pending(spec, run):
        error = {**failure, "compensation": compensation_summary(run)}
        _end(run, TerminalStatus.FAILED, error, now=now, progress=progress)


def _worker_steps_pending(spec: WorkflowSpec, run: WorkflowRun) -> bool:
    """Whether a planned runnable a worker executes has no result yet."""
    for planned in run.pending_runnables():
        if is_side_work(planned):
            return True
        if spec.step(str(planned["step"])).kind is StepKind.CUSTOM:
            return True
    return False


def _apply_side_work(
    spec: WorkflowSpec,
    run: WorkflowRun,
    key: str,
    name: str,
    outcome: Outcome,
    output: JSONDict | None,
    error: JSONDict | None,
    claim: JSONDict | None,
    now: datetime,
    progress: Progress,
) -> None:
    """Apply a compensation callback's or a dynamic node's outcome; outputs join the context.

    A failed callback is recorded and the rollback goes on; a dynamic node that failed for
    good fails the run (rolling it back first where steps declare compensations).
    """
    ok = outcome is Outcome.OK
    result = (output or {}) if ok else {}
    run.apply_result(key, outcome=outcome.value, result=result, error=error, claim=claim, now=now)
    if is_compensating(run):
        _continue_compensation(spec, run, now=now, progress=progress)
    elif not ok:
        _fail(spec, run, name, key, error, now=now, progress=progress)
    elif not run.pending_runnables() and run.manual_state is None:
        _end(run, TerminalStatus.COMPLETED, None, now=now, progress=progress)


def retry_policy(spec: WorkflowSpec, planned: JSONDict) -> RetryPolicy:
    """The retry policy of a planned runnable.

    A declared step has its own; a dynamic node the ``max_attempts`` it was scheduled with;
    a compensation callback a single attempt.
    """
    if planned.get("compensation") is not None:
        return NO_RETRY
    dynamic = planned.get("dynamic")
    if dynamic is not None:
        return RetryPolicy(max_attempts=int(dynamic.get("max_attempts") or 1))
    return spec.step(str(planned["step"])).retry_policy


def _end(
    run: WorkflowRun,
    status: TerminalStatus,
    error: JSONDict | None,
    *,
    now: datetime,
    progress: Progress,
) -> None:
    if run.is_terminal:
        return
    if status is TerminalStatus.COMPLETED and run.pending_runnables():
        return  # scheduled dynamic work still runs; the last of it completes the run
    run.end(status, now=now, error=error)
    progress.ended = status


def _planned(run: WorkflowRun, key: str) -> JSONDict:
    planned = run.planned.get(key)
    if planned is None:
        raise UnknownAttempt(runnable_key=key)
    return planned
