"""Executing attempts: claim visible work, run the step, and settle its outcome in one commit.

The three phases are separate functions so that ``execute_next`` (one attempt, two commits)
and the worker (many attempts, one commit per batch) share every rule:

- `claim_attempts` fences each claim with the queue's version and returns the raw claim
  tokens, which exist only in this process;
- `run_claimed` loads the run, refuses a stale definition, and runs the step with the
  input the run persisted for it while an optional heartbeat keeps the lease;
- `settle` records each outcome on the queue, applies it to the run, plans and schedules
  what follows (or ends the run and fences its leftovers), all in one ``save``. A conflict
  reloads and decides again; the steps never run again.
"""

from __future__ import annotations

import inspect
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from squidmesh_es.domain import (
    Attempt,
    AttemptStatus,
    DispatchOrder,
    DispatchQueue,
    JSONDict,
    Runnable,
    TerminalStatus,
    WorkflowRun,
    hash_claim_token,
    runnable_key,
)
from squidmesh_es.domain._planner import (
    LogRecord,
    Progress,
    apply_outcome,
    carry_out_builtin,
    plan_deferral,
    plan_retry,
    retry_policy,
)
from squidmesh_es.errors import (
    Conflict,
    ConflictingIntent,
    DefinitionMismatch,
    InvalidArgument,
    RunNotFound,
    RunTerminal,
    SquidMeshError,
    StaleClaim,
    UnknownAttempt,
)
from squidmesh_es.runtime._notifier import ScheduledAttempt
from squidmesh_es.runtime._telemetry import claimed, conflict_retried, step_span
from squidmesh_es.workflow import (
    Outcome,
    OutcomeStatus,
    ParentRun,
    Step,
    StepContext,
    StepOutcome,
)
from squidmesh_es.workflow._runner import StepCoroutine, start_step

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "DEFAULT_LEASE",
    "MIN_HEARTBEAT_INTERVAL",
    "RACE_SIGNS",
    "Claim",
    "Ready",
    "Settled",
    "automatic_heartbeat",
    "claim_attempts",
    "extend_leases",
    "prepare_claimed",
    "return_claims",
    "run_claimed",
    "start_claimed",
    "run_moved",
    "settle",
]

logger = logging.getLogger("squidmesh_es.runtime")
step_logger = logging.getLogger("squidmesh_es.steps")

MIN_HEARTBEAT_INTERVAL = timedelta(milliseconds=50)
"""Shorter heartbeat intervals are refused: they would turn the journal into a clock."""

DEFAULT_LEASE = timedelta(seconds=30)
"""A worker's lease when given none: short, since workers extend it while steps run."""

CONFLICT_RETRIES = 50
"""How often a fenced write reloads and decides again before giving up with `Conflict`."""

RACE_SIGNS = (ConflictingIntent, RunTerminal)
"""What the queue raises when it shows a twin's commit that the run, read before it, lacked.

A command reads its run, then the run's queue. When a concurrent command commits between
the two reads, the queue already holds the twin's work (the same runnable key scheduled at
another instant, or the run closed) while the run does not: the decision was made on a stale
run. Such an error is not the caller's: the command decides again (see `run_moved`).
"""


def run_moved(mesh: SquidMesh, run_id: UUID, seen_version: int | None) -> bool:
    """Whether ``run_id`` moved past ``seen_version`` since it was read (``None``: absent).

    Commands call it when their decision raised one of `RACE_SIGNS`: a run that moved means
    a concurrent commit, so the whole decision is made again on the new state; a run that
    did not move means the error is the answer.
    """
    try:
        version: int | None = mesh.get_run(run_id).version
    except RunNotFound:
        version = None
    return version != seen_version


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt this process holds until ``lease_until``; the token never leaves it."""

    attempt: Attempt
    queue: str
    owner_id: str
    claim_id: str
    claim_token: str = field(repr=False)
    lease_until: datetime
    claimed_at: datetime

    @property
    def key(self) -> str:
        """The attempt's runnable key."""
        return self.attempt.runnable_key

    @property
    def token_hash(self) -> str:
        """The token's hash, as the queue stores it."""
        return hash_claim_token(self.claim_token)


@dataclass(frozen=True, slots=True)
class Finished:
    """What came of running a claimed attempt: a step outcome or a refused definition."""

    claim: Claim
    outcome: StepOutcome | None = None
    mismatch: DefinitionMismatch | None = None
    abandoned: bool = False
    """The attempt's leases ran out too often (a poison step): it was not run again."""


@dataclass(slots=True)
class Settled:
    """The result of one settle commit."""

    runs: dict[str, WorkflowRun] = field(default_factory=dict)
    queue: DispatchQueue | None = None
    refused: dict[str, SquidMeshError] = field(default_factory=dict)
    """Outcomes the journal refused (stale or expired claim, ended run), by runnable key."""
    scheduled: list[ScheduledAttempt] = field(default_factory=list)
    logs: list[tuple[LogRecord, str, str]] = field(default_factory=list)
    """Log-step records with their run id and workflow, to write after the commit."""
    committed: bool = False


# -- claiming -----------------------------------------------------------------------------


def claim_from(
    mesh: SquidMesh,
    queue: DispatchQueue,
    *,
    owner_id: str,
    limit: int,
    lease_for: timedelta,
    now: datetime,
    under_way_only: bool = False,
) -> list[Claim]:
    """Claim up to ``limit`` visible or expired attempts on ``queue`` (not saved here).

    Only attempts of workflows this runtime has registered are taken; with
    ``under_way_only``, only expired claims and attempts of runs already under way (not a
    run's first steps), which `DispatchOrder.RUNS_UNDER_WAY_FIRST` yields first.
    """
    claims: list[Claim] = []
    if limit <= 0:
        return claims
    for attempt in queue.iter_claimable(now, order=mesh.dispatch_order):
        if under_way_only and attempt.fresh and attempt.status is not AttemptStatus.CLAIMED:
            break  # the first steps of new runs come after every other
        if not mesh.can_execute(attempt):
            continue
        token = secrets.token_urlsafe(32)
        claim_id = secrets.token_urlsafe(16)
        claimed = queue.claim(
            attempt.runnable_key,
            claim_id=claim_id,
            claim_token_hash=hash_claim_token(token),
            owner_id=owner_id,
            lease_for=lease_for,
            now=now,
        )
        assert claimed.lease_until is not None
        claims.append(
            Claim(claimed, queue.queue, owner_id, claim_id, token, claimed.lease_until, now)
        )
        if len(claims) >= limit:
            break
    return claims


def claim_attempts(
    mesh: SquidMesh,
    queue_name: str,
    *,
    owner_id: str,
    limit: int,
    lease_for: timedelta,
    now: datetime,
) -> list[Claim]:
    """Claim up to ``limit`` attempts in one commit; ``[]`` when nothing is visible.

    Raises:
        Conflict: other claimers kept winning the race for the queue.
    """
    check_owner(owner_id)
    check_lease(lease_for)
    began_ns = time.time_ns()
    for _ in range(CONFLICT_RETRIES):
        with mesh.deciding:
            queue = mesh.get_queue(queue_name)
            claims = claim_from(
                mesh, queue, owner_id=owner_id, limit=limit, lease_for=lease_for, now=now
            )
            if not claims:
                return []
            try:
                mesh.save(queue)
            except Conflict:
                conflict_retried("claim")
                continue
        claimed(claims, began_ns=began_ns, owner_id=owner_id)
        return claims
    raise Conflict("queue kept moving while claiming", queue=queue_name)


# -- running ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """A claimed attempt whose step is about to run: its code and its context."""

    claim: Claim
    step: type[Step]
    ctx: StepContext
    input: JSONDict
    """The step's input, as persisted when the work was planned."""
    workflow: str
    trace_context: object
    """The trace context stored with the run: the step's span is its child."""


def prepare_claimed(mesh: SquidMesh, claim: Claim) -> Finished | Ready:
    """What running the claimed attempt needs, or its result when its step must not run.

    A run whose definition is not this code's, a built-in step (carried out on settle), a
    poison attempt and an action dropped from the registry all finish here, without
    running anything.
    """
    # The copy this process holds is enough when it already planned this attempt: the
    # input is the run's state when it was planned, and settling fences everything later.
    run = mesh.get_run(claim.attempt.run_id, fresh=False)
    if claim.key not in run.planned:
        run = mesh.get_run(claim.attempt.run_id)
    definition = mesh.require_definition(run)  # claim_from only takes work it has code for
    mismatch = definition.mismatch(run)
    if mismatch is not None:  # another process may have migrated the run since: ask the latest
        run = mesh.get_run(claim.attempt.run_id)
        mismatch = definition.mismatch(run)
        if mismatch is not None:
            return Finished(claim, mismatch=mismatch)
    planned = run.planned.get(claim.key)
    if planned is None:  # settle refuses it as an unknown attempt
        return Finished(claim, outcome=StepOutcome(OutcomeStatus.OK))
    if not definition.is_custom(planned):
        return Finished(claim, outcome=StepOutcome(OutcomeStatus.OK))  # carried out on settle
    expiries = claim.attempt.lease_expiries
    if retry_policy(definition.spec, planned).abandons_after(expiries):
        # Every earlier claim ended with its lease and no outcome: the step kills or hangs
        # its worker. Running it again would take this worker down too.
        reason: JSONDict = {"code": "attempt_abandoned", "lease_expiries": expiries}
        outcome = StepOutcome(OutcomeStatus.ERROR, reason=reason)
        return Finished(claim, outcome=outcome, abandoned=True)
    try:
        step_class = definition.step_class(planned)
    except SquidMeshError as exc:
        # The action was disabled or dropped from the registry since the work was planned.
        refusal: JSONDict = {"code": exc.code, "message": exc.message}
        return Finished(claim, outcome=StepOutcome(OutcomeStatus.ERROR, reason=refusal))
    return Ready(
        claim,
        step_class,
        _context(mesh, run, claim),
        run.step_input(planned),
        run.workflow,
        run.trace_context,
    )


def start_claimed(mesh: SquidMesh, ready: Ready) -> StepOutcome | StepCoroutine:
    """Call the ready step in its span: a plain step's outcome, or an async one's coroutine.

    An async step's span opens when the coroutine starts on the loop, so it measures the
    step's own time there and is current for the spans the step's code opens.
    """
    if inspect.iscoroutinefunction(ready.step.run):
        return _spanned(mesh, ready)
    with step_span(ready.trace_context, ready.claim, ready.workflow) as span:
        started = start_step(ready.step, ready.input, ready.ctx, limits=mesh.limits)
        if isinstance(started, StepOutcome):
            span.outcome(started.status.value)
    return started


async def _spanned(mesh: SquidMesh, ready: Ready) -> StepOutcome:
    with step_span(ready.trace_context, ready.claim, ready.workflow) as span:
        started = start_step(ready.step, ready.input, ready.ctx, limits=mesh.limits)
        outcome = started if isinstance(started, StepOutcome) else await started
        span.outcome(outcome.status.value)
    return outcome


def run_claimed(
    mesh: SquidMesh,
    claim: Claim,
    *,
    heartbeat_interval: timedelta | None = None,
    lease_for: timedelta = timedelta(seconds=300),
) -> Finished:
    """Run the claimed attempt's step once, unless its run's definition is not this code's.

    The step gets the input persisted when it was planned. With ``heartbeat_interval``, a
    background thread extends the lease until the step returns, and stops for good as soon
    as the journal says the claim is no longer current. An async step runs on the
    runtime's own long-lived loop (`SquidMesh.step_loop`).
    """
    ready = prepare_claimed(mesh, claim)
    if isinstance(ready, Finished):
        return ready
    with _heartbeat(mesh, claim, heartbeat_interval, lease_for):
        started = start_claimed(mesh, ready)
        if not isinstance(started, StepOutcome):
            started = mesh.step_loop.run(started)
    return Finished(claim, outcome=started)


def _context(mesh: SquidMesh, run: WorkflowRun, claim: Claim) -> StepContext:
    attempt = claim.attempt
    parent = run.start_context.get("parent")
    schedule = run.start_context.get("schedule")
    return StepContext(
        run_id=run.run_id,
        workflow=run.workflow,
        step=attempt.step,
        attempt=attempt.attempt_number,
        runnable_key=attempt.runnable_key,
        idempotency_key=attempt.idempotency_key,
        claim_id=claim.claim_id,
        schedule=schedule if isinstance(schedule, dict) else None,
        parent=_parent(parent) if isinstance(parent, dict) else None,
        child_runs=mesh,
    )


def _parent(data: JSONDict) -> ParentRun:
    return ParentRun(
        run_id=UUID(str(data["run_id"])),
        step=str(data["step"]),
        runnable_key=str(data["runnable_key"]),
        attempt=int(data["attempt"]),
        child_key=str(data["child_key"]),
    )


@contextmanager
def _heartbeat(
    mesh: SquidMesh, claim: Claim, interval: timedelta | None, lease_for: timedelta
) -> Iterator[None]:
    if interval is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat,
        args=(mesh, claim, interval, lease_for, stop),
        name=f"squidmesh-heartbeat-{claim.claim_id[:8]}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _beat(
    mesh: SquidMesh,
    claim: Claim,
    interval: timedelta,
    lease_for: timedelta,
    stop: threading.Event,
) -> None:
    while not stop.wait(interval.total_seconds()):
        try:
            _extend_lease(mesh, claim, lease_for)
        except SquidMeshError as exc:
            logger.warning(
                "heartbeat stopped: claim %s of %s is no longer current (%s)",
                claim.claim_id,
                claim.key,
                exc.code,
            )
            return


def automatic_heartbeat(lease_for: timedelta) -> timedelta | None:
    """The heartbeat a worker uses when given none: a third of the lease.

    Two beats may be lost before the lease runs out. ``None`` for a lease too short to beat
    within (under three times `MIN_HEARTBEAT_INTERVAL`).
    """
    interval = lease_for / 3
    return interval if interval >= MIN_HEARTBEAT_INTERVAL else None


def extend_leases(
    mesh: SquidMesh, queue_name: str, claims: Sequence[Claim], lease_for: timedelta
) -> dict[str, SquidMeshError]:
    """Extend the leases of ``claims`` (all of ``queue_name``) in one commit.

    Returns the claims the journal refused (no longer current: taken over, released,
    finished, or their run ended), by runnable key; the others now run until
    ``now + lease_for``.

    Raises:
        Conflict: the queue kept moving for every retry.
        StorageUnavailable: the database could not be reached.
    """
    for _ in range(CONFLICT_RETRIES):
        queue = mesh.get_queue(queue_name)
        now = mesh.now()
        refused: dict[str, SquidMeshError] = {}
        for claim in claims:
            try:
                queue.heartbeat(
                    claim.key,
                    claim_id=claim.claim_id,
                    claim_token_hash=claim.token_hash,
                    lease_for=lease_for,
                    now=now,
                )
            except SquidMeshError as exc:
                refused[claim.key] = exc
        if not queue.pending_events:
            return refused
        try:
            mesh.save(queue)
        except Conflict:
            conflict_retried("heartbeat")
            continue
        return refused
    raise Conflict("queue kept moving while extending leases", queue=queue_name)


def _extend_lease(mesh: SquidMesh, claim: Claim, lease_for: timedelta) -> None:
    refused = extend_leases(mesh, claim.queue, [claim], lease_for)
    if claim.key in refused:
        raise refused[claim.key]


def return_claims(
    mesh: SquidMesh, queue_name: str, owner_id: str, keys: Sequence[str]
) -> list[str]:
    """Give back ``owner_id``'s claims on ``keys`` (their steps never started) in one commit.

    The attempts wait again where they were, claimable by any worker at once, without
    counting a lost lease. Returns the keys given back: a claim taken over or released
    meanwhile is not this worker's to return.

    Raises:
        Conflict: the queue kept moving for every retry.
        StorageUnavailable: the database could not be reached.
    """
    for _ in range(CONFLICT_RETRIES):
        queue = mesh.get_queue(queue_name)
        returned = queue.return_claims(owner_id, keys, now=mesh.now())
        if not returned:
            return []
        try:
            mesh.save(queue)
        except Conflict:
            conflict_retried("return_claims")
            continue
        return returned
    raise Conflict("queue kept moving while returning claims", queue=queue_name)


# -- settling -----------------------------------------------------------------------------


def settle(
    mesh: SquidMesh,
    queue_name: str,
    finished: Sequence[Finished],
    *,
    now: datetime,
    claim_more: int = 0,
    owner_id: str = "squidmesh",
    lease_for: timedelta = timedelta(seconds=300),
) -> tuple[Settled, list[Claim]]:
    """Record and apply every finished attempt of ``queue_name`` in one commit.

    Up to ``claim_more`` attempts of the same queue are claimed in that commit too. Each
    outcome is fenced by its claim: a stale or expired claim, or a run that ended meanwhile,
    refuses that outcome alone (reported in ``refused``) and changes nothing.

    Raises:
        Conflict: the journal kept moving for every retry.
    """
    settled, claims = settle_partitions(
        mesh,
        {queue_name: finished},
        claim_order=[queue_name],
        now=now,
        claim_more=claim_more,
        owner_id=owner_id,
        lease_for=lease_for,
    )
    return settled[queue_name], claims


def settle_partitions(
    mesh: SquidMesh,
    finished: Mapping[str, Sequence[Finished]],
    *,
    claim_order: Sequence[str],
    now: datetime,
    claim_more: int = 0,
    owner_id: str = "squidmesh",
    lease_for: timedelta = timedelta(seconds=300),
) -> tuple[dict[str, Settled], list[Claim]]:
    """`settle` over several queue partitions at once: one commit for all of them.

    ``finished`` holds each partition's finished attempts; up to ``claim_more`` attempts
    are then claimed from the partitions of ``claim_order``, in that order. A worker's
    partitions are its own most of the time, so one commit settling and claiming on all of
    them costs what one partition's did. Returns each partition's `Settled` (with
    ``committed`` set on all of them when the commit happened) and the claims.

    Raises:
        Conflict: the journal kept moving for every retry.
    """
    with mesh.deciding:
        return _settle_partitions(
            mesh,
            finished,
            claim_order=claim_order,
            now=now,
            claim_more=claim_more,
            owner_id=owner_id,
            lease_for=lease_for,
        )


def _settle_partitions(
    mesh: SquidMesh,
    finished: Mapping[str, Sequence[Finished]],
    *,
    claim_order: Sequence[str],
    now: datetime,
    claim_more: int,
    owner_id: str,
    lease_for: timedelta,
) -> tuple[dict[str, Settled], list[Claim]]:
    excluded: dict[str, SquidMeshError] = {}
    # The first try decides on the copies this process holds (`fresh=False`): the commit
    # fences them, and a refusal or a conflict sends it back to the journal's latest.
    fresh = False
    for _ in range(CONFLICT_RETRIES):
        parts: dict[str, Settled] = {}
        restart = False
        for name, items in finished.items():
            # an outcome refused half-decided on an earlier try stays refused, in its partition
            refused = {i.claim.key: excluded[i.claim.key] for i in items if i.claim.key in excluded}
            settled = Settled(queue=mesh.get_queue(name, fresh=fresh), refused=refused)
            parts[name] = settled
            if not _decide_all(mesh, settled, items, excluded, now=now, fresh=fresh):
                restart = True
                break
        if not fresh and (restart or any(p.refused for p in parts.values())):
            fresh = True  # a refusal must come from the latest state, not a stale copy
            excluded.clear()
            continue
        if restart:
            continue
        claims: list[Claim] = []
        if mesh.dispatch_order is DispatchOrder.RUNS_UNDER_WAY_FIRST and len(parts) > 1:
            # The next steps of the runs just settled, on whichever partition, before the
            # first step of any new run.
            for name in claim_order:
                held = parts.get(name)
                if held is None or held.queue is None or len(claims) >= claim_more:
                    continue
                claims.extend(
                    claim_from(
                        mesh, held.queue, owner_id=owner_id, limit=claim_more - len(claims),
                        lease_for=lease_for, now=now, under_way_only=True,
                    )
                )  # fmt: skip
        for name in claim_order:
            more = claim_more - len(claims)
            if more <= 0:
                break
            held = parts.get(name)
            queue = held.queue if held is not None else mesh.get_queue(name)
            assert queue is not None
            taken = claim_from(
                mesh, queue, owner_id=owner_id, limit=more, lease_for=lease_for, now=now
            )
            if taken and held is None:
                parts[name] = Settled(queue=queue)
            claims.extend(taken)
        queues = [p.queue for p in parts.values() if p.queue is not None and p.queue.pending_events]
        runs = [r for p in parts.values() for r in p.runs.values() if r.pending_events]
        if not queues and not runs:
            return parts, claims
        try:
            mesh.save(*queues, *runs)
        except Conflict:
            conflict_retried("settle")
            fresh = True
            continue
        for settled in parts.values():
            settled.committed = True
            after_commit(mesh, settled)
        return parts, claims
    raise Conflict("journal kept moving while settling", queue=",".join(finished))


def _decide_all(
    mesh: SquidMesh,
    settled: Settled,
    finished: Sequence[Finished],
    excluded: dict[str, SquidMeshError],
    *,
    now: datetime,
    fresh: bool,
) -> bool:
    """Decide each finished attempt of ``settled.queue`` into ``settled``.

    Returns ``False`` when an outcome was refused after it had changed the aggregates (it
    is then in ``excluded``, and the whole commit must be decided again without it).
    """
    queue = settled.queue
    assert queue is not None
    for item in finished:
        if item.claim.key in settled.refused:
            continue
        try:
            run = settled.runs.get(item.claim.attempt.run_id)
            if run is None:
                run = mesh.get_run(item.claim.attempt.run_id, fresh=fresh)
        except SquidMeshError as exc:
            settled.refused[item.claim.key] = exc
            continue
        before = len(queue.pending_events) + len(run.pending_events)
        try:
            progress = _decide(mesh, queue, run, item, now=now)
        except SquidMeshError as exc:
            settled.refused[item.claim.key] = exc
            if len(queue.pending_events) + len(run.pending_events) != before:
                excluded[item.claim.key] = exc  # half-decided: start over without it
                return False
            continue
        settled.runs[str(run.run_id)] = run
        carry_out(mesh, queue, run, progress, now=now, settled=settled)
    return True


def _decide(
    mesh: SquidMesh, queue: DispatchQueue, run: WorkflowRun, item: Finished, *, now: datetime
) -> Progress:
    """Record one outcome on the queue and apply it to the run; raises before any write.

    The run keeps the claim's facts with the result (who, under which claim, leased until
    when, finished when, with which outcome): its history no longer needs the queue.
    """
    claim = item.claim
    key = claim.key
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    if key not in run.planned:
        raise UnknownAttempt(runnable_key=key)
    cid, token_hash = claim.claim_id, claim.token_hash
    facts: JSONDict = {
        "claim_id": cid,
        "owner_id": claim.owner_id,
        "claimed_at": claim.claimed_at,
        "lease_until": claim.lease_until,
        "finished_at": now,
        "outcome": "definition_mismatch" if item.outcome is None else item.outcome.status.value,
    }
    if item.mismatch is not None:
        if mesh.require_definition(run).mismatch(run) is None:
            # The run was migrated after the attempt was judged: it may run after all. Its
            # claim is left to lapse and the attempt is delivered again.
            raise StaleClaim(runnable_key=key, reason="run_migrated")
        error = item.mismatch.to_dict()
        queue.fail(key, error=error, claim_id=cid, claim_token_hash=token_hash, now=now)
        queue.mark_applied(key, now=now)
        run.apply_result(key, outcome=Outcome.ERROR.value, error=error, claim=facts, now=now)
        run.end(TerminalStatus.FAILED, now=now, error={**error, "step": claim.attempt.step})
        return Progress(ended=TerminalStatus.FAILED)
    outcome = item.outcome
    assert outcome is not None
    definition = mesh.require_definition(run)
    spec = definition.spec
    planned = run.planned[key]
    if not definition.is_custom(planned):
        queue.complete(key, result={}, claim_id=cid, claim_token_hash=token_hash, now=now)
        queue.mark_applied(key, now=now)
        return carry_out_builtin(spec, run, key, now=now, claim=facts)
    if outcome.status is OutcomeStatus.OK:
        queue.complete(
            key,
            result=outcome.output,
            keep_result=False,  # the run's RunnableApplied below is the one stored copy
            claim_id=cid,
            claim_token_hash=token_hash,
            now=now,
        )
        queue.mark_applied(key, now=now)
        return apply_outcome(
            spec, run, key, outcome=Outcome.OK, output=outcome.output, claim=facts, now=now
        )
    if outcome.status is OutcomeStatus.DEFER:
        assert outcome.delay is not None  # run_step refuses a deferral without a delay
        queue.complete(
            key,
            result={"deferred": outcome.reason},
            claim_id=cid,
            claim_token_hash=token_hash,
            now=now,
        )
        queue.mark_applied(key, now=now)
        again = plan_deferral(
            spec, run, key, reason=outcome.reason, delay=outcome.delay, claim=facts, now=now
        )
        return Progress(to_schedule=[again])
    attempt_number = claim.attempt.attempt_number
    policy = retry_policy(spec, planned)
    retryable = outcome.status is OutcomeStatus.RETRY and not item.abandoned
    error = _error(outcome, attempt_number, retryable=retryable)
    if item.abandoned:
        error = {
            **error,
            "code": "attempt_abandoned",
            "message": "the attempt's lease ran out too often without an outcome",
            "lease_expiries": claim.attempt.lease_expiries,
        }
    if retryable and policy.allows_retry_after(attempt_number):
        delay = outcome.delay if outcome.delay is not None else policy.delay_for(attempt_number)
        retry_key = runnable_key(run.run_id, claim.attempt.step, attempt_number + 1)
        visible_at = now + delay
        queue.fail(
            key,
            error=error,
            retry_runnable_key=retry_key,
            retry_visible_at=visible_at,
            claim_id=cid,
            claim_token_hash=token_hash,
            now=now,
        )
        plan_retry(spec, run, key, error=error, visible_at=visible_at, claim=facts, now=now)
        return Progress()  # the queue's AttemptFailed scheduled the retry itself
    if retryable and policy.max_attempts > 1:
        error = {**error, "code": "retries_exhausted"}
    queue.fail(key, error=error, claim_id=cid, claim_token_hash=token_hash, now=now)
    queue.mark_applied(key, now=now)
    return apply_outcome(spec, run, key, outcome=Outcome.ERROR, error=error, claim=facts, now=now)


def _error(outcome: StepOutcome, attempt: int, *, retryable: bool) -> JSONDict:
    code = "step_raised" if outcome.raised else ("step_retry" if retryable else "step_error")
    reason = outcome.reason
    message = reason.get("message") if isinstance(reason, dict) else None
    return {
        "code": code,
        "message": message if isinstance(message, str) else None,
        "reason": reason,
        "attempt": attempt,
        "retryable": retryable,
    }


def carry_out(
    mesh: SquidMesh,
    queue: DispatchQueue,
    run: WorkflowRun,
    progress: Progress,
    *,
    now: datetime,
    settled: Settled,
    fresh: bool = False,
) -> None:
    """Schedule what the run planned, or close it on the queue when it ended.

    ``fresh`` marks a new run's first work, which waits behind runs under way.
    """
    if progress.ended is not None:
        queue.close_run(run.run_id, status=progress.ended.value, now=now)
    else:
        for runnable in progress.to_schedule:
            schedule(queue, run, runnable, now=now, fresh=fresh)
            settled.scheduled.append(
                ScheduledAttempt(
                    str(run.run_id), runnable.runnable_key, queue.queue, runnable.visible_at
                )
            )
    for record in progress.logs:
        settled.logs.append((record, str(run.run_id), run.workflow))


def schedule(
    queue: DispatchQueue,
    run: WorkflowRun,
    runnable: Runnable,
    *,
    now: datetime,
    fresh: bool = False,
) -> None:
    """Put a planned runnable on the queue; its metadata lets workers pick the work they can run.

    The workflow name says which registered class has the code; ``definition`` marks a run
    carrying its own spec; ``action`` names the registry entry a worker must have.
    """
    metadata: JSONDict = {"workflow": run.workflow}
    if run.spec is not None:
        metadata["definition"] = "runtime_spec"
    if runnable.action is not None:
        metadata["action"] = runnable.action
    queue.schedule(
        run_id=run.run_id,
        runnable_key=runnable.runnable_key,
        step=runnable.step,
        attempt_number=runnable.attempt_number,
        visible_at=runnable.visible_at,
        idempotency_key=runnable.idempotency_key,
        metadata=metadata,
        fresh=fresh,
        now=now,
    )


def after_commit(mesh: SquidMesh, settled: Settled) -> None:
    """Live effects that must follow a durable commit: log records and wakeup hints."""
    for record, run_id, workflow in settled.logs:
        step_logger.log(
            logging.getLevelName(record.level.upper()),
            record.message,
            extra={
                "squidmesh_run_id": run_id,
                "squidmesh_workflow": workflow,
                "squidmesh_step": record.step,
                "squidmesh_runnable_key": record.runnable_key,
            },
        )
    mesh.notify_scheduled(settled.scheduled)


def check_owner(owner_id: str) -> None:
    """Refuse an empty or non-string worker id before anything is written."""
    if not isinstance(owner_id, str) or not owner_id.strip():
        raise InvalidArgument("owner_id", "must be a non-empty string")


def check_lease(lease_for: timedelta) -> None:
    """Refuse a lease that is not a positive `timedelta`."""
    if not isinstance(lease_for, timedelta) or lease_for <= timedelta(0):
        raise InvalidArgument("lease_for", "must be a positive timedelta")


def check_heartbeat(interval: timedelta | None, lease_for: timedelta) -> None:
    """A heartbeat must be at least `MIN_HEARTBEAT_INTERVAL` and shorter than the lease."""
    if interval is None:
        return
    if not isinstance(interval, timedelta) or interval < MIN_HEARTBEAT_INTERVAL:
        raise InvalidArgument("heartbeat_interval", "must be a timedelta of at least 50 ms")
    if interval >= lease_for:
        raise InvalidArgument("heartbeat_interval", "must be shorter than lease_for")
