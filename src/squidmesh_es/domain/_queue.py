"""The dispatch journal of one queue: attempts, who holds each of them, and until when.

The claim rules live here and nowhere else. Each rule is one function that returns the
anomaly a fact would cause, or ``None``; command methods raise on it before anything is
written, and event application records it as an anomaly when an externally written
history breaks it.

Every step costs the same whatever the backlog:

- claimable work is found through persistent heaps ordered by visible time (and by lease
  end for expired claims), so a claim and `next_visible_at` cost O(log n), never a scan;
- the large maps are copy-on-write (`CowMap`), so the copy the repository hands each
  command costs O(1) in the backlog;
- state stays bounded by live work: an attempt leaves it once its result is applied to the
  run or its run ends, and a short memory of recently finished attempts keeps duplicate
  completions idempotent.

Runs already under way go first: an attempt scheduled by a run's start is *fresh* and waits
behind the successors, retries and continuations of running runs (`DispatchOrder`), so a
backlog of new runs does not hold back every next step of the runs in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from heapq import merge
from itertools import chain, islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any, final
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from squidmesh_es.domain._cow import CowMap, RecentMemory
from squidmesh_es.domain._heap import Entry, Heap, iter_sorted, pop, push
from squidmesh_es.domain._journal import (
    ALREADY_RECORDED,
    AnomalyLog,
    JSONDict,
    ToleratedEvent,
    Verdict,
    digest,
)
from squidmesh_es.domain._keys import check_partitions, queue_id
from squidmesh_es.domain._vocab import AnomalyReason, AttemptStatus, TerminalStatus
from squidmesh_es.errors import (
    AttemptNotClaimable,
    ConflictingCompletion,
    ConflictingIntent,
    ExpiredClaim,
    InvalidArgument,
    ResultNotCompleted,
    RunTerminal,
    StaleClaim,
    UnknownAttempt,
)
from squidmesh_es.redaction import redact_json as redact_metadata

__all__ = ["Attempt", "DispatchOrder", "DispatchQueue"]

RECENT_LIMIT = 1000
"""How many finished attempts and closed runs the queue remembers for precise refusals."""

_WAITING = (AttemptStatus.AVAILABLE, AttemptStatus.RETRY_SCHEDULED)
_FORKED = (CowMap, RecentMemory)
_COPIED = (dict, list)
_INTENT_FIELDS = ("run_id", "idempotency_key", "attempt_number", "step", "visible_at")


class DispatchOrder(StrEnum):
    """Which visible attempt a claimer gets first (expired claims always come first)."""

    RUNS_UNDER_WAY_FIRST = "runs_under_way_first"
    """Successors, retries and continuations before the first steps of new runs."""
    FIFO = "fifo"
    """Strictly by visible time, then scheduling order."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One live attempt, as the queue holds it (records are replaced, never changed).

    It carries no input: the worker reads it from the run it loads to execute the step
    (`WorkflowRun.step_input`), so a value is stored once. ``input`` is kept only for
    attempts scheduled before 0.3, whose events carried it.
    """

    runnable_key: str
    run_id: str
    step: str
    attempt_number: int
    idempotency_key: str
    visible_at: datetime
    status: AttemptStatus
    claim_id: str | None = None
    owner_id: str | None = None
    lease_until: datetime | None = None
    result: JSONDict | None = None
    error: JSONDict | None = None
    completed_at: datetime | None = None
    wakeup_emitted: bool = False
    retry_of: str | None = None
    metadata: JSONDict | None = None
    input: JSONDict | None = None
    result_digest: str | None = None
    """Set when the completion did not keep ``result`` (the run applied it in that commit)."""
    claim_token_hash: str | None = field(default=None, repr=False, compare=False)
    seq: int = field(default=0, repr=False, compare=False)
    """Scheduling order in this queue: breaks ties between equal visible times."""
    fresh: bool = field(default=False, compare=False)
    """Scheduled by its run's start: waits behind runs under way (`DispatchOrder`)."""
    lease_expiries: int = field(default=0, compare=False)
    """How often a claim of this attempt ended by its lease running out, without an outcome.

    Derived, never stored in an event: each takeover of an expired claim counts one.
    """

    @classmethod
    def from_state(cls, state: JSONDict) -> Attempt:
        """Build the record from its stored (snapshot) form."""
        return cls(
            runnable_key=state["runnable_key"],
            run_id=state["run_id"],
            step=state["step"],
            attempt_number=state["attempt_number"],
            idempotency_key=state["idempotency_key"],
            input=state.get("input"),
            visible_at=state["visible_at"],
            status=AttemptStatus(state["status"]),
            claim_id=state.get("claim_id"),
            owner_id=state.get("owner_id"),
            lease_until=state.get("lease_until"),
            result=state.get("result"),
            result_digest=state.get("result_digest"),
            error=state.get("error"),
            completed_at=state.get("completed_at"),
            wakeup_emitted=state.get("wakeup_emitted", False),
            retry_of=state.get("retry_of"),
            metadata=state.get("metadata"),
            claim_token_hash=state.get("claim_token_hash"),
            seq=state.get("seq", 0),
            fresh=state.get("fresh", False),
            lease_expiries=state.get("lease_expiries", 0),
        )

    def to_state(self) -> JSONDict:
        """The stored (snapshot) form: JSON-shaped, as earlier versions wrote it.

        ``input`` only where an old event carried one.
        """
        state = dict(zip(_RECORD_FIELDS, _record_values(self), strict=True))
        state["status"] = self.status.value
        for name in ("input", "result_digest"):
            if state[name] is None:
                del state[name]
        return state

    @property
    def intent(self) -> JSONDict:
        """What scheduling promised: a repeat of the same intent is a duplicate."""
        return {name: getattr(self, name) for name in _INTENT_FIELDS}


_RECORD_FIELDS = tuple(f.name for f in fields(Attempt))
_RECORD_FIELD_SET = frozenset(_RECORD_FIELDS)
_record_values = attrgetter(*_RECORD_FIELDS)
"""An attempt's field values in `_RECORD_FIELDS` order, read in one call (queue snapshots
turn every live attempt into its stored form)."""


def _changed(attempt: Attempt, changes: dict[str, Any]) -> Attempt:
    """``dataclasses.replace(attempt, **changes)``, for the claim and completion path.

    ``replace`` walks ``fields()`` and calls the frozen ``__init__`` on every change; the
    record has no ``__post_init__``, so setting its slots directly builds the same record.

    Raises:
        TypeError: a change names no field of `Attempt`.
    """
    if not _RECORD_FIELD_SET.issuperset(changes):
        unknown = sorted(set(changes) - _RECORD_FIELD_SET)
        raise TypeError(f"Attempt has no field {unknown[0]!r}")
    record = object.__new__(Attempt)
    for name in _RECORD_FIELDS:
        object.__setattr__(
            record, name, changes[name] if name in changes else getattr(attempt, name)
        )
    return record


def _order(attempt: Attempt) -> tuple[datetime, str, int, str]:
    return (attempt.visible_at, attempt.run_id, attempt.attempt_number, attempt.runnable_key)


@final
class DispatchQueue(AnomalyLog, Aggregate):
    """Attempts of one queue, and who holds each of them until when."""

    TOPIC = "squidmesh.DispatchQueue"

    if TYPE_CHECKING:  # state set by events; annotations here would become __init__ args
        queue: str
        attempts: CowMap[str, Attempt]
        runs: CowMap[str, tuple[str, ...]]
        """Live attempt keys of each run."""
        queued_runs: CowMap[str, int]
        closed_runs: RecentMemory[str, str]
        finished: RecentMemory[str, JSONDict]
        counters: dict[str, int]
        fresh_ready: Heap
        """Waiting attempts scheduled by their run's start, by visible time."""
        continuing_ready: Heap
        """Every other waiting attempt, by visible time."""
        leases: Heap
        """Claimed attempts, by lease end: expired ones may be taken over."""
        unapplied: CowMap[str, str]
        """Completed or failed attempts whose result the run has not applied, to their run:
        recovery's index (our own commits apply a result in the commit that records it)."""
        recovered_to: int
        """Notification id up to which recovery has examined the journal for this queue."""

    partitions = 1
    """How many partitions the queue has (kept by partition 0; queues older than
    partitioning have one). It only grows, so no partition that holds work is forgotten."""

    class Event(Aggregate.Event):
        """Base of the queue's events."""

    class Opened(Event, Aggregate.Created):
        """The queue's journal begins."""

        TOPIC = "squidmesh.DispatchQueue.Opened"
        queue: str

        def apply(self, q: DispatchQueue) -> None:
            q.queue = self.queue
            q.attempts = CowMap()
            q.runs = CowMap()
            q.queued_runs = CowMap()
            q.closed_runs = RecentMemory(RECENT_LIMIT)
            q.finished = RecentMemory(RECENT_LIMIT)
            q.counters = {
                "scheduled": 0,
                "claimed": 0,
                "completed": 0,
                "failed": 0,
                "applied": 0,
                "dropped_for_terminal_run": 0,
                "runs_queued": 0,
                "runs_closed": 0,
            }
            q.anomalies = []
            q.anomaly_count = 0
            q.fresh_ready = q.continuing_ready = q.leases = None
            q.unapplied = CowMap()
            q.recovered_to = 0

    class RunQueued(ToleratedEvent, Event):
        """A run will put attempts on this queue; recovery finds started runs through it."""

        TOPIC = "squidmesh.DispatchQueue.RunQueued"
        run_id: str

        def evolve(self, q: DispatchQueue) -> None:
            if self.run_id in q.closed_runs:
                q.note_anomaly(AnomalyReason.TERMINAL_RUN, self, run_id=self.run_id)
            elif self.run_id not in q.queued_runs:
                q.queued_runs[self.run_id] = self.originator_version
                q.counters["runs_queued"] += 1

    class AttemptScheduled(ToleratedEvent, Event):
        """A runnable became an attempt that workers may claim from ``visible_at`` on.

        Since 0.3 it carries no input (the run holds it); older events carry ``input``.
        """

        TOPIC = "squidmesh.DispatchQueue.AttemptScheduled"
        REQUIRED = (
            "run_id",
            "runnable_key",
            "idempotency_key",
            "attempt_number",
            "step",
            "visible_at",
            "metadata",
        )
        run_id: str
        runnable_key: str
        idempotency_key: str
        attempt_number: int
        step: str
        visible_at: datetime
        metadata: JSONDict | None
        fresh: bool = False
        """Scheduled by the run's start (absent in histories written before 0.2: False)."""
        input: JSONDict | None = None
        """The step's input, in histories written before 0.3 only."""

        def evolve(self, q: DispatchQueue) -> None:
            intent = self._intent()
            anomaly = q.schedule_rule(self.run_id, self.runnable_key, intent)
            if anomaly is not None:
                if anomaly is not ALREADY_RECORDED:
                    q.note_anomaly(
                        anomaly, self, run_id=self.run_id, runnable_key=self.runnable_key
                    )
                return
            q.counters["scheduled"] += 1
            q.add_live(
                Attempt(
                    runnable_key=self.runnable_key,
                    status=AttemptStatus.AVAILABLE,
                    metadata=self.metadata,
                    seq=q.counters["scheduled"],
                    fresh=bool(getattr(self, "fresh", False)),
                    input=getattr(self, "input", None),
                    **intent,
                )
            )

        def _intent(self) -> JSONDict:
            return {
                "run_id": self.run_id,
                "idempotency_key": self.idempotency_key,
                "attempt_number": self.attempt_number,
                "step": self.step,
                "visible_at": self.visible_at,
            }

    class AttemptClaimed(ToleratedEvent, Event):
        """A worker holds the attempt until ``lease_until``; only the token's hash is kept."""

        TOPIC = "squidmesh.DispatchQueue.AttemptClaimed"
        runnable_key: str
        claim_id: str
        claim_token_hash: str
        owner_id: str
        lease_until: datetime

        def evolve(self, q: DispatchQueue) -> None:
            anomaly = q.claim_rule(self.runnable_key, self.timestamp)
            if anomaly is not None:
                q.note_anomaly(
                    anomaly, self, runnable_key=self.runnable_key, claim_id=self.claim_id
                )
                return
            attempt = q.attempts[self.runnable_key]
            # The claim rule let a held attempt be claimed only once its lease had ended:
            # this claim takes over from one that ended without an outcome.
            expired = attempt.status is AttemptStatus.CLAIMED
            q.replace_live(
                attempt,
                status=AttemptStatus.CLAIMED,
                claim_id=self.claim_id,
                claim_token_hash=self.claim_token_hash,
                owner_id=self.owner_id,
                lease_until=self.lease_until,
                lease_expiries=attempt.lease_expiries + expired,
            )
            q.counters["claimed"] += 1

    class AttemptHeartbeat(ToleratedEvent, Event):
        """The current claim is still working; its lease now ends at ``lease_until``."""

        TOPIC = "squidmesh.DispatchQueue.AttemptHeartbeat"
        runnable_key: str
        claim_id: str
        claim_token_hash: str
        lease_until: datetime

        def evolve(self, q: DispatchQueue) -> None:
            anomaly = q.fence_rule(
                self.runnable_key, self.claim_id, self.claim_token_hash, self.timestamp
            )
            if anomaly is not None:
                q.note_anomaly(
                    anomaly, self, runnable_key=self.runnable_key, claim_id=self.claim_id
                )
                return
            q.replace_live(q.attempts[self.runnable_key], lease_until=self.lease_until)

    class AttemptCompleted(ToleratedEvent, Event):
        """The current claim finished the attempt with ``result``.

        When the run applied the result in the same commit, its ``RunnableApplied`` is the
        one stored copy: ``result`` is ``None`` and ``result_digest`` lets the queue tell a
        repeated completion from a conflicting one.
        """

        TOPIC = "squidmesh.DispatchQueue.AttemptCompleted"
        REQUIRED = ("runnable_key", "claim_id", "claim_token_hash", "result")
        runnable_key: str
        claim_id: str
        claim_token_hash: str
        result: JSONDict | None
        result_digest: str | None = None

        def evolve(self, q: DispatchQueue) -> None:
            result_digest = getattr(self, "result_digest", None) or digest(self.result)
            anomaly = q.completion_rule(
                self.runnable_key,
                self.claim_id,
                self.claim_token_hash,
                result_digest,
                self.timestamp,
            )
            if anomaly is not None:
                if anomaly is not ALREADY_RECORDED:
                    q.note_anomaly(
                        anomaly, self, runnable_key=self.runnable_key, claim_id=self.claim_id
                    )
                return
            q.replace_live(
                q.attempts[self.runnable_key],
                status=AttemptStatus.COMPLETED,
                result=self.result,
                result_digest=None if self.result is not None else result_digest,
                error=None,
                completed_at=self.timestamp,
            )
            q.counters["completed"] += 1

    class AttemptFailed(ToleratedEvent, Event):
        """The current claim failed the attempt; a retry, if given, becomes a new attempt."""

        TOPIC = "squidmesh.DispatchQueue.AttemptFailed"
        REQUIRED = ("runnable_key", "claim_id", "claim_token_hash", "error")
        runnable_key: str
        claim_id: str
        claim_token_hash: str
        error: JSONDict
        retry_runnable_key: str | None = None
        retry_visible_at: datetime | None = None

        def evolve(self, q: DispatchQueue) -> None:
            anomaly = q.fence_rule(
                self.runnable_key, self.claim_id, self.claim_token_hash, self.timestamp
            )
            if anomaly is not None:
                q.note_anomaly(
                    anomaly, self, runnable_key=self.runnable_key, claim_id=self.claim_id
                )
                return
            failed = q.attempts[self.runnable_key]
            q.counters["failed"] += 1
            retry_key = getattr(self, "retry_runnable_key", None)
            retry_at = getattr(self, "retry_visible_at", None)
            if retry_key is None or retry_at is None:
                q.replace_live(failed, status=AttemptStatus.FAILED, error=self.error)
                return
            intent = q.retry_intent(failed, retry_at)
            retry_anomaly = q.schedule_rule(failed.run_id, retry_key, intent)
            if retry_anomaly is not None:
                # An existing key is never overwritten, not even by the same intent: the
                # command refuses it too, so only an externally written history gets here.
                reason = (
                    AnomalyReason.CONFLICTING_RUNNABLE_INTENT
                    if retry_anomaly is ALREADY_RECORDED
                    else retry_anomaly
                )
                q.note_anomaly(reason, self, runnable_key=retry_key)
                q.replace_live(failed, status=AttemptStatus.FAILED, error=self.error)
                return
            # The failed try is superseded by its retry: it leaves the live state and the
            # retry carries its error for inspection.
            q.forget(failed, status=AttemptStatus.FAILED, applied=False)
            q.counters["scheduled"] += 1
            q.add_live(
                Attempt(
                    runnable_key=retry_key,
                    status=AttemptStatus.RETRY_SCHEDULED,
                    retry_of=self.runnable_key,
                    error=self.error,
                    metadata=failed.metadata,
                    seq=q.counters["scheduled"],
                    input=failed.input,
                    **intent,
                )
            )

    class ClaimsReleased(ToleratedEvent, Event):
        """An operator declared ``owner_id`` dead: its claims count as expired from now on.

        The attempts may be claimed again at once (each takeover counts a lease expiry), and
        the released worker's late heartbeats and outcomes are refused as expired.
        """

        TOPIC = "squidmesh.DispatchQueue.ClaimsReleased"
        owner_id: str
        runnable_keys: list[str]

        def evolve(self, q: DispatchQueue) -> None:
            for key in self.runnable_keys:
                attempt = q.attempts.get(key)
                if (
                    attempt is None
                    or attempt.status is not AttemptStatus.CLAIMED
                    or attempt.owner_id != self.owner_id
                    or attempt.lease_until is None
                    or attempt.lease_until <= self.timestamp
                ):
                    continue  # finished, taken over or expired meanwhile: nothing to release
                q.replace_live(attempt, lease_until=self.timestamp)

    class ClaimsReturned(ToleratedEvent, Event):
        """``owner_id`` gives back claims it took but never started: they wait as before.

        A worker claims ahead of its free threads while its steps are short; a claim whose
        step could not start soon (a long step took the thread) is returned so another
        worker may run it now. Unlike a release, the attempt is not counted as having lost
        a lease, and the returned claim's heartbeats and outcomes are refused as stale.
        """

        TOPIC = "squidmesh.DispatchQueue.ClaimsReturned"
        owner_id: str
        runnable_keys: list[str]

        def evolve(self, q: DispatchQueue) -> None:
            for key in self.runnable_keys:
                attempt = q.claimed_by(self.owner_id, key)
                if attempt is None:
                    continue  # finished or taken over meanwhile: not this owner's to return
                q.replace_live(
                    attempt,
                    status=AttemptStatus.AVAILABLE,
                    claim_id=None,
                    claim_token_hash=None,
                    owner_id=None,
                    lease_until=None,
                )

    class RecoveryChecked(Event):
        """Recovery examined the journal's events up to ``position`` for this queue's runs.

        The next pass reads only the events after it (see `runtime._recovery`).
        """

        TOPIC = "squidmesh.DispatchQueue.RecoveryChecked"
        position: int

        def apply(self, q: DispatchQueue) -> None:
            q.recovered_to = max(q.recovered_to, self.position)

    class LiveWakeupEmitted(ToleratedEvent, Event):
        """A notifier hint for the attempt went out after its scheduling committed."""

        TOPIC = "squidmesh.DispatchQueue.LiveWakeupEmitted"
        runnable_key: str

        def evolve(self, q: DispatchQueue) -> None:
            anomaly = q.known_rule(self.runnable_key)
            if anomaly is not None:
                q.note_anomaly(anomaly, self, runnable_key=self.runnable_key)
                return
            q.replace_live(q.attempts[self.runnable_key], wakeup_emitted=True)

    class ResultApplied(ToleratedEvent, Event):
        """The run journal applied the attempt's result; the attempt leaves the live state."""

        TOPIC = "squidmesh.DispatchQueue.ResultApplied"
        runnable_key: str

        def evolve(self, q: DispatchQueue) -> None:
            anomaly = q.applied_rule(self.runnable_key)
            if anomaly is not None:
                if anomaly is not ALREADY_RECORDED:
                    q.note_anomaly(anomaly, self, runnable_key=self.runnable_key)
                return
            attempt = q.attempts[self.runnable_key]
            q.forget(attempt, status=attempt.status, applied=True)
            q.counters["applied"] += 1

    class PartitionsWidened(ToleratedEvent, Event):
        """Runs of this queue may now go to ``partitions`` partitions; workers poll them all."""

        TOPIC = "squidmesh.DispatchQueue.PartitionsWidened"
        partitions: int

        def evolve(self, q: DispatchQueue) -> None:
            q.partitions = max(q.partitions, self.partitions)

    class RunClosed(ToleratedEvent, Event):
        """The run ended; none of its attempts may be claimed, completed or redelivered."""

        TOPIC = "squidmesh.DispatchQueue.RunClosed"
        run_id: str
        status: str

        def evolve(self, q: DispatchQueue) -> None:
            if self.run_id in q.closed_runs:
                return
            for key in q.runs.get(self.run_id) or ():
                attempt = q.attempts[key]
                q.forget(attempt, status=attempt.status, applied=False)
                q.counters["dropped_for_terminal_run"] += 1
            q.queued_runs.pop(self.run_id)
            q.closed_runs[self.run_id] = self.status
            q.counters["runs_closed"] += 1

    Created = Opened
    """The library looks for ``Created``; ours has the spec's name."""

    class Snapshot(LibrarySnapshot):
        """Checkpoint of the queue's live state; disposable, and O(live attempts) in size.

        The stored form is plain JSON (the same shape earlier versions wrote); the indexes
        are not stored but rebuilt from the live attempts when a snapshot is loaded.
        """

        TOPIC = "squidmesh.DispatchQueue.Snapshot"

        @classmethod
        def take(cls, aggregate: Any) -> Any:
            """Store the queue's state in its plain JSON form."""
            return cls(
                originator_id=aggregate.id,
                originator_version=aggregate.version,
                timestamp=cls.create_timestamp(),
                topic="squidmesh.DispatchQueue",
                state=aggregate.stored_state(),
            )

        def mutate(self, _: Any) -> Any:
            """Rebuild the queue, its copy-on-write maps and its indexes."""
            queue = super().mutate(None)
            assert isinstance(queue, DispatchQueue)
            queue.restore_state()
            return queue

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def open(cls, queue: str, *, now: datetime) -> DispatchQueue:
        """Begin the journal of ``queue`` (or of a partition); its id derives from the name."""
        return cls._create(cls.Opened, id=queue_id(queue), queue=queue, timestamp=now)

    # -- copies and snapshots -------------------------------------------------------------

    def __repr__(self) -> str:
        """Short: the library's would print every attempt and index node."""
        return f"DispatchQueue(queue={self.queue!r}, version={self.version}, live={len(self)})"

    def __deepcopy__(self, memo: dict[int, Any]) -> DispatchQueue:
        """A copy for one command: O(1) in the backlog, independent of the original."""
        clone = object.__new__(type(self))
        state = self.__dict__.copy()
        for name, value in state.items():
            if isinstance(value, _FORKED):
                state[name] = value.fork()
            elif isinstance(value, _COPIED):
                state[name] = type(value)(value)
        clone.__dict__.update(state)
        memo[id(self)] = clone
        return clone

    def stored_state(self) -> JSONDict:
        """The snapshot form of the state: plain JSON, without the derived indexes."""
        return {
            "queue": self.queue,
            "attempts": {key: a.to_state() for key, a in self.attempts.items()},
            "queued_runs": self.queued_runs.to_dict(),
            "closed_runs": self.closed_runs.to_dict(),
            "finished": self.finished.to_dict(),
            "counters": dict(self.counters),
            "anomalies": list(self.anomalies),
            "anomaly_count": self.anomaly_count,
            "recovered_to": self.recovered_to,
            "partitions": self.partitions,
        }

    def restore_state(self) -> None:
        """Turn the snapshot form back into the working state (any earlier version's)."""
        state = self.__dict__
        records = [Attempt.from_state(a) for a in state.pop("attempts").values()]
        if any(a.seq == 0 for a in records):  # written before scheduling order was kept
            records.sort(key=_order)
            records = [replace(a, seq=n) for n, a in enumerate(records, start=1)]
        closed: RecentMemory[str, str] = RecentMemory(RECENT_LIMIT)
        for run_id, status in state.pop("closed_runs").items():
            closed[run_id] = status
        finished: RecentMemory[str, JSONDict] = RecentMemory(RECENT_LIMIT)
        for key, record in state.pop("finished").items():
            finished[key] = record
        self.queued_runs = CowMap(state.pop("queued_runs"))
        self.closed_runs = closed
        self.finished = finished
        self.attempts = CowMap()
        self.runs = CowMap()
        self.fresh_ready = self.continuing_ready = self.leases = None
        self.unapplied = CowMap()
        state.setdefault("recovered_to", 0)  # snapshots written before recovery kept one
        for record in records:
            self.add_live(record)

    # -- state helpers used by event application -------------------------------------------

    def add_live(self, attempt: Attempt) -> None:
        """Make ``attempt`` live and index it where claimers will look."""
        key = attempt.runnable_key
        self.attempts[key] = attempt
        self.runs[attempt.run_id] = (*(self.runs.get(attempt.run_id) or ()), key)
        self._index(attempt)
        self._track_result(attempt)

    def replace_live(self, attempt: Attempt, **changes: Any) -> None:
        """Record a live attempt's new state; the indexes follow, stale entries fall out."""
        updated = _changed(attempt, changes)
        self.attempts[attempt.runnable_key] = updated
        if updated.status != attempt.status:
            self._track_result(updated)
        if updated.status != attempt.status or updated.lease_until != attempt.lease_until:
            self._index(updated)
            self._drop_stale()

    def forget(self, attempt: Attempt, *, status: AttemptStatus, applied: bool) -> None:
        """Move ``attempt`` out of the live state into the bounded memory of finished ones."""
        key = attempt.runnable_key
        self.attempts.pop(key)
        self.unapplied.pop(key)
        remaining = tuple(k for k in self.runs.get(attempt.run_id) or () if k != key)
        if remaining:
            self.runs[attempt.run_id] = remaining
        else:
            self.runs.pop(attempt.run_id)
        record = _finished_record(attempt)
        record["status"] = status.value
        record["applied"] = applied
        self.finished[key] = record
        self._drop_stale()

    def retry_intent(self, failed: Attempt, visible_at: datetime) -> JSONDict:
        """The intent of the next try of ``failed``: same step, one attempt later."""
        return {
            "run_id": failed.run_id,
            "idempotency_key": failed.idempotency_key,
            "attempt_number": failed.attempt_number + 1,
            "step": failed.step,
            "visible_at": visible_at,
        }

    def _track_result(self, attempt: Attempt) -> None:
        if attempt.status in (AttemptStatus.COMPLETED, AttemptStatus.FAILED):
            self.unapplied[attempt.runnable_key] = attempt.run_id
        else:
            self.unapplied.pop(attempt.runnable_key)

    def _index(self, attempt: Attempt) -> None:
        if attempt.status in _WAITING:
            entry = Entry(attempt.visible_at, attempt.seq, attempt.runnable_key)
            if attempt.fresh:
                self.fresh_ready = push(self.fresh_ready, entry)
            else:
                self.continuing_ready = push(self.continuing_ready, entry)
        elif attempt.status is AttemptStatus.CLAIMED and attempt.lease_until is not None:
            entry = Entry(attempt.lease_until, attempt.seq, attempt.runnable_key)
            self.leases = push(self.leases, entry)

    def _drop_stale(self) -> None:
        """Pop index entries that no longer describe their attempt from the heaps' tops."""
        while self.fresh_ready is not None and not self._waits(self.fresh_ready.entry):
            self.fresh_ready = pop(self.fresh_ready)
        while self.continuing_ready is not None and not self._waits(self.continuing_ready.entry):
            self.continuing_ready = pop(self.continuing_ready)
        while self.leases is not None and not self._holds(self.leases.entry):
            self.leases = pop(self.leases)

    def _waits(self, entry: Entry) -> bool:
        attempt = self.attempts.get(entry.key)
        return attempt is not None and attempt.status in _WAITING

    def _holds(self, entry: Entry) -> bool:
        attempt = self.attempts.get(entry.key)
        return (
            attempt is not None
            and attempt.status is AttemptStatus.CLAIMED
            and attempt.lease_until == entry.due_at
        )

    # -- rules (pure: state in, anomaly out) ----------------------------------------------

    def known_rule(self, key: str) -> AnomalyReason | None:
        """The attempt must be live and its run open."""
        if key in self.attempts:
            return None
        finished = self.finished.get(key)
        if finished is not None and finished["run_id"] in self.closed_runs:
            return AnomalyReason.TERMINAL_RUN
        if finished is not None:
            return AnomalyReason.TERMINAL_ATTEMPT
        return AnomalyReason.UNKNOWN_RUNNABLE_INTENT

    def schedule_rule(self, run_id: str, key: str, intent: JSONDict) -> Verdict:
        """A key is scheduled once; the same intent again is a duplicate, another a conflict."""
        if run_id in self.closed_runs:
            return AnomalyReason.TERMINAL_RUN
        existing = self.attempts.get(key)
        if existing is None:
            finished = self.finished.get(key)
            if finished is not None:
                same = finished.get("intent_digest") == digest(intent)
                return ALREADY_RECORDED if same else AnomalyReason.CONFLICTING_RUNNABLE_INTENT
            return None
        if existing.intent == intent:
            return ALREADY_RECORDED
        return AnomalyReason.CONFLICTING_RUNNABLE_INTENT

    def claim_rule(self, key: str, at: datetime) -> AnomalyReason | None:
        """Claimable from ``visible_at`` on, unless another lease is still running at ``at``.

        A lease ending exactly at ``at`` is expired, and an attempt visible exactly at ``at``
        is visible.
        """
        unknown = self.known_rule(key)
        if unknown is not None:
            return unknown
        attempt = self.attempts[key]
        if attempt.status in (AttemptStatus.COMPLETED, AttemptStatus.FAILED):
            return AnomalyReason.TERMINAL_ATTEMPT
        if attempt.status is AttemptStatus.CLAIMED:
            assert attempt.lease_until is not None
            if attempt.lease_until > at:
                return AnomalyReason.ACTIVE_CLAIM
        if attempt.visible_at > at:
            return AnomalyReason.ATTEMPT_NOT_VISIBLE
        return None

    def fence_rule(
        self, key: str, claim_id: str, token_hash: str, at: datetime
    ) -> AnomalyReason | None:
        """Heartbeat, completion and failure need the current claim before ``lease_until``."""
        unknown = self.known_rule(key)
        if unknown is not None:
            if unknown is AnomalyReason.TERMINAL_ATTEMPT:
                return AnomalyReason.STALE_CLAIM
            return unknown
        attempt = self.attempts[key]
        if attempt.status is not AttemptStatus.CLAIMED:
            return AnomalyReason.STALE_CLAIM
        if attempt.claim_id != claim_id or attempt.claim_token_hash != token_hash:
            return AnomalyReason.STALE_CLAIM
        assert attempt.lease_until is not None
        if attempt.lease_until <= at:
            return AnomalyReason.EXPIRED_CLAIM
        return None

    def completion_rule(
        self, key: str, claim_id: str, token_hash: str, result_digest: str, at: datetime
    ) -> Verdict:
        """A repeated identical completion by the same claim is a duplicate, not an error."""
        done = self.attempts.get(key)
        if done is None or done.status is not AttemptStatus.CLAIMED:
            record = self.finished.get(key) if done is None else _finished_record(done)
            if record is not None and record.get("status") == AttemptStatus.COMPLETED.value:
                if record["run_id"] in self.closed_runs:
                    return AnomalyReason.TERMINAL_RUN
                same_claim = (
                    record["claim_id"] == claim_id and record["claim_token_hash"] == token_hash
                )
                if not same_claim:
                    return AnomalyReason.STALE_CLAIM
                if record["result_digest"] == result_digest:
                    return ALREADY_RECORDED
                return AnomalyReason.CONFLICTING_COMPLETION
        return self.fence_rule(key, claim_id, token_hash, at)

    def applied_rule(self, key: str) -> Verdict:
        """Only a completed or failed attempt can be applied; applying twice is a duplicate."""
        attempt = self.attempts.get(key)
        if attempt is None:
            finished = self.finished.get(key)
            if finished is not None and finished.get("applied"):
                return ALREADY_RECORDED
            return self.known_rule(key)
        if attempt.status not in (AttemptStatus.COMPLETED, AttemptStatus.FAILED):
            return AnomalyReason.RESULT_NOT_COMPLETED
        return None

    # -- queries --------------------------------------------------------------------------

    def __len__(self) -> int:
        """How many attempts are live (waiting, claimed, or finished but not yet applied)."""
        return len(self.attempts)

    def attempt(self, key: str) -> Attempt | None:
        """The live attempt with ``key``, or ``None`` once it finished or was never here."""
        return self.attempts.get(key)

    def attempts_of(self, run_id: UUID | str) -> list[Attempt]:
        """Live attempts of one run, in claim order."""
        keys = self.runs.get(str(run_id)) or ()
        return sorted((self.attempts[key] for key in keys), key=_order)

    def claimable(
        self,
        now: datetime,
        *,
        limit: int | None = None,
        order: DispatchOrder = DispatchOrder.RUNS_UNDER_WAY_FIRST,
    ) -> list[Attempt]:
        """Visible attempts and expired claims at ``now``, in the order workers get them."""
        return list(islice(self.iter_claimable(now, order=order), limit))

    def iter_claimable(
        self, now: datetime, *, order: DispatchOrder = DispatchOrder.RUNS_UNDER_WAY_FIRST
    ) -> Iterator[Attempt]:
        """`claimable`, lazily: each attempt looked at costs O(log n), never a scan.

        Expired claims come first (their work is overdue), then waiting attempts by
        ``order``.
        """
        expired = self._due(self.leases, now, self._holds)
        continuing = self._due(self.continuing_ready, now, self._waits)
        fresh = self._due(self.fresh_ready, now, self._waits)
        if order is DispatchOrder.FIFO:
            waiting: Iterator[Entry] = merge(continuing, fresh)
        else:
            waiting = chain(continuing, fresh)
        for entry in chain(expired, waiting):
            yield self.attempts[entry.key]

    def _due(self, heap: Heap, now: datetime, valid: Callable[[Entry], bool]) -> Iterator[Entry]:
        for entry in iter_sorted(heap):
            if entry.due_at > now:
                return
            if valid(entry):
                yield entry

    def next_visible_at(self) -> datetime | None:
        """When the earliest waiting attempt becomes visible; a worker may sleep until then."""
        times = [
            entry.due_at
            for heap in (self.fresh_ready, self.continuing_ready)
            for entry in islice((e for e in iter_sorted(heap) if self._waits(e)), 1)
        ]
        return min(times, default=None)

    def is_closed(self, run_id: UUID | str) -> bool:
        """Whether the queue recently saw ``run_id`` end (remembered for the last runs)."""
        return str(run_id) in self.closed_runs

    # -- commands -------------------------------------------------------------------------

    def widen(self, partitions: int, *, now: datetime) -> bool:
        """Let the queue's runs go to ``partitions`` partitions; returns whether it grew.

        Called on partition 0, which keeps the count for every process. Never shrinks.

        Raises:
            InvalidArgument: ``partitions`` is not a usable partition count.
        """
        check_partitions(partitions)
        if partitions <= self.partitions:
            return False
        self.trigger_event(self.PartitionsWidened, partitions=partitions, timestamp=now)
        return True

    def enqueue_run(self, run_id: UUID | str, *, now: datetime) -> bool:
        """Mark ``run_id`` as using this queue; returns whether a fact was written.

        Raises:
            RunTerminal: the run already ended.
        """
        rid = str(run_id)
        if rid in self.closed_runs:
            raise RunTerminal(rid, self.closed_runs.get(rid))
        if rid in self.queued_runs:
            return False
        self.trigger_event(self.RunQueued, run_id=rid, timestamp=now)
        return True

    def schedule(
        self,
        *,
        run_id: UUID | str,
        runnable_key: str,
        step: str,
        attempt_number: int,
        visible_at: datetime,
        now: datetime,
        idempotency_key: str | None = None,
        metadata: JSONDict | None = None,
        fresh: bool = False,
    ) -> bool:
        """Make a runnable claimable from ``visible_at`` on; returns whether it was written.

        Scheduling the same intent again writes nothing. The run is marked queued first.
        ``fresh`` marks the first work of a new run, which waits behind runs under way.

        Raises:
            RunTerminal: the run already ended.
            ConflictingIntent: the key is already used for a different intent.
        """
        if attempt_number < 1:
            raise InvalidArgument("attempt_number", "must be at least 1")
        rid = str(run_id)
        intent = {
            "run_id": rid,
            "idempotency_key": idempotency_key or runnable_key,
            "attempt_number": attempt_number,
            "step": step,
            "visible_at": visible_at,
        }
        anomaly = self.schedule_rule(rid, runnable_key, intent)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is AnomalyReason.TERMINAL_RUN:
            raise RunTerminal(rid, self.closed_runs.get(rid))
        if anomaly is not None:
            raise ConflictingIntent(runnable_key=runnable_key)
        self.enqueue_run(rid, now=now)
        self.trigger_event(
            self.AttemptScheduled,
            runnable_key=runnable_key,
            metadata=redact_metadata(metadata) if metadata is not None else None,
            fresh=fresh,
            timestamp=now,
            **intent,
        )
        return True

    def claim(
        self,
        runnable_key: str,
        *,
        claim_id: str,
        claim_token_hash: str,
        owner_id: str,
        lease_for: timedelta,
        now: datetime,
    ) -> Attempt:
        """Give the attempt to ``owner_id`` until ``now + lease_for``.

        An expired claim can be taken over; a lease ending exactly at ``now`` is expired.

        Raises:
            UnknownAttempt: no live attempt has this key.
            RunTerminal: the attempt's run ended.
            AttemptNotClaimable: not yet visible, leased to another claim, or finished.
        """
        if lease_for <= timedelta(0):
            raise InvalidArgument("lease_for", "must be positive")
        _check_hash(claim_token_hash)
        anomaly = self.claim_rule(runnable_key, now)
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key, claiming=True)
        self.trigger_event(
            self.AttemptClaimed,
            runnable_key=runnable_key,
            claim_id=claim_id,
            claim_token_hash=claim_token_hash,
            owner_id=owner_id,
            lease_until=now + lease_for,
            timestamp=now,
        )
        return self.attempts[runnable_key]

    def heartbeat(
        self,
        runnable_key: str,
        *,
        claim_id: str,
        claim_token_hash: str,
        lease_for: timedelta,
        now: datetime,
    ) -> datetime:
        """Extend the current claim's lease to ``now + lease_for`` and return the new end.

        Raises:
            StaleClaim: not the current claim (``ExpiredClaim`` when its lease ended).
            UnknownAttempt, RunTerminal: the attempt or its run is gone.
        """
        if lease_for <= timedelta(0):
            raise InvalidArgument("lease_for", "must be positive")
        anomaly = self.fence_rule(runnable_key, claim_id, claim_token_hash, now)
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key)
        lease_until = now + lease_for
        self.trigger_event(
            self.AttemptHeartbeat,
            runnable_key=runnable_key,
            claim_id=claim_id,
            claim_token_hash=claim_token_hash,
            lease_until=lease_until,
            timestamp=now,
        )
        return lease_until

    def complete(
        self,
        runnable_key: str,
        *,
        claim_id: str,
        claim_token_hash: str,
        result: JSONDict,
        now: datetime,
        keep_result: bool = True,
    ) -> bool:
        """Record the claim's result; returns False for an identical duplicate (nothing written).

        ``keep_result=False`` when the run applies the result in the same commit: the queue
        then keeps only its digest, and the run's history holds the one copy.

        Raises:
            StaleClaim: not the current claim (``ExpiredClaim`` when its lease ended).
            ConflictingCompletion: the same claim completed it with another result.
            UnknownAttempt, RunTerminal: the attempt or its run is gone.
        """
        result_digest = digest(result)
        anomaly = self.completion_rule(runnable_key, claim_id, claim_token_hash, result_digest, now)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key)
        self.trigger_event(
            self.AttemptCompleted,
            runnable_key=runnable_key,
            claim_id=claim_id,
            claim_token_hash=claim_token_hash,
            result=result if keep_result else None,
            result_digest=None if keep_result else result_digest,
            timestamp=now,
        )
        return True

    def fail(
        self,
        runnable_key: str,
        *,
        claim_id: str,
        claim_token_hash: str,
        error: JSONDict,
        now: datetime,
        retry_runnable_key: str | None = None,
        retry_visible_at: datetime | None = None,
    ) -> Attempt | None:
        """Record the claim's failure, and schedule the next try when a retry is given.

        Returns the retry attempt, or ``None`` when no retry was asked for.

        Raises:
            InvalidArgument: only one of ``retry_runnable_key`` and ``retry_visible_at``.
            StaleClaim: not the current claim (``ExpiredClaim`` when its lease ended).
            ConflictingIntent: the retry key is already used for something else.
            UnknownAttempt, RunTerminal: the attempt or its run is gone.
        """
        if (retry_runnable_key is None) != (retry_visible_at is None):
            raise InvalidArgument("retry", "give retry_runnable_key and retry_visible_at together")
        anomaly = self.fence_rule(runnable_key, claim_id, claim_token_hash, now)
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key)
        if retry_runnable_key is not None and retry_visible_at is not None:
            failed = self.attempts[runnable_key]
            intent = self.retry_intent(failed, retry_visible_at)
            retry_anomaly = self.schedule_rule(failed.run_id, retry_runnable_key, intent)
            if retry_anomaly is not None:
                raise ConflictingIntent(runnable_key=retry_runnable_key)
        self.trigger_event(
            self.AttemptFailed,
            runnable_key=runnable_key,
            claim_id=claim_id,
            claim_token_hash=claim_token_hash,
            error=error,
            retry_runnable_key=retry_runnable_key,
            retry_visible_at=retry_visible_at,
            timestamp=now,
        )
        if retry_runnable_key is None:
            return None
        return self.attempts[retry_runnable_key]

    def runs_with_unapplied_results(self) -> list[str]:
        """Runs with a completed or failed attempt their journal has not applied (an index)."""
        return list(dict.fromkeys(run_id for _, run_id in self.unapplied.items()))

    def check_recovery(self, position: int, *, now: datetime) -> bool:
        """Record that recovery examined the journal up to ``position``; False if not further."""
        if position <= self.recovered_to:
            return False
        self.trigger_event(self.RecoveryChecked, position=position, timestamp=now)
        return True

    def claimed_by(self, owner_id: str, key: str) -> Attempt | None:
        """The live attempt ``key`` if ``owner_id`` holds its claim (lease running or not)."""
        attempt = self.attempts.get(key)
        if attempt is None or attempt.status is not AttemptStatus.CLAIMED:
            return None
        return attempt if attempt.owner_id == owner_id else None

    def held_by(self, owner_id: str, now: datetime) -> list[str]:
        """Keys of the attempts ``owner_id`` holds under a lease still running at ``now``.

        A scan of the live attempts: for operator commands, never on the claim path.
        """
        return [
            a.runnable_key
            for a in self.attempts.values()
            if a.status is AttemptStatus.CLAIMED
            and a.owner_id == owner_id
            and a.lease_until is not None
            and a.lease_until > now
        ]

    def release_owner(self, owner_id: str, *, now: datetime) -> list[str]:
        """End every running lease of ``owner_id`` at ``now``; returns the released keys.

        Writes nothing when the owner holds nothing.
        """
        keys = self.held_by(owner_id, now)
        if keys:
            self.trigger_event(
                self.ClaimsReleased, owner_id=owner_id, runnable_keys=keys, timestamp=now
            )
        return keys

    def return_claims(self, owner_id: str, keys: Sequence[str], *, now: datetime) -> list[str]:
        """Give back the claims ``owner_id`` holds on ``keys``; returns the keys given back.

        For claims whose steps never started. Writes nothing when none is held any more.
        """
        held = [key for key in keys if self.claimed_by(owner_id, key) is not None]
        if held:
            self.trigger_event(
                self.ClaimsReturned, owner_id=owner_id, runnable_keys=held, timestamp=now
            )
        return held

    def record_wakeup(self, runnable_key: str, *, now: datetime) -> None:
        """Note that a live hint for the attempt went out.

        Raises:
            UnknownAttempt, RunTerminal: the attempt or its run is gone.
        """
        anomaly = self.known_rule(runnable_key)
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key)
        self.trigger_event(self.LiveWakeupEmitted, runnable_key=runnable_key, timestamp=now)

    def mark_applied(self, runnable_key: str, *, now: datetime) -> bool:
        """Drop a completed or failed attempt whose result the run applied; False if already.

        Raises:
            ResultNotCompleted: the attempt has no result yet.
            UnknownAttempt, RunTerminal: the attempt or its run is gone.
        """
        anomaly = self.applied_rule(runnable_key)
        if anomaly is ALREADY_RECORDED:
            return False
        if anomaly is AnomalyReason.RESULT_NOT_COMPLETED:
            raise ResultNotCompleted(runnable_key=runnable_key)
        if anomaly is not None:
            raise self._refusal(anomaly, runnable_key)
        self.trigger_event(self.ResultApplied, runnable_key=runnable_key, timestamp=now)
        return True

    def close_run(self, run_id: UUID | str, *, status: str, now: datetime) -> bool:
        """Fence every attempt of an ended run out of the queue; False if already closed.

        Raises:
            InvalidArgument: ``status`` is not a terminal status.
        """
        if status not in {s.value for s in TerminalStatus}:
            raise InvalidArgument("status", "must be completed, failed or cancelled")
        rid = str(run_id)
        if rid in self.closed_runs:
            return False
        self.trigger_event(self.RunClosed, run_id=rid, status=status, timestamp=now)
        return True

    def _refusal(self, reason: AnomalyReason, key: str, *, claiming: bool = False) -> Exception:
        if reason is AnomalyReason.UNKNOWN_RUNNABLE_INTENT:
            return UnknownAttempt(runnable_key=key)
        if reason is AnomalyReason.TERMINAL_RUN:
            run_id = self._run_of(key)
            return RunTerminal(run_id, self.closed_runs.get(run_id))
        if reason is AnomalyReason.EXPIRED_CLAIM:
            return ExpiredClaim(runnable_key=key)
        if reason is AnomalyReason.CONFLICTING_COMPLETION:
            return ConflictingCompletion(runnable_key=key)
        if reason is AnomalyReason.TERMINAL_ATTEMPT and not claiming:
            return UnknownAttempt(runnable_key=key)  # no longer live: nothing to act on
        if claiming:
            return AttemptNotClaimable(runnable_key=key, reason=reason.value)
        return StaleClaim(runnable_key=key, reason=reason.value)

    def _run_of(self, key: str) -> str:
        attempt = self.attempts.get(key)
        if attempt is not None:
            return attempt.run_id
        return str((self.finished.get(key) or {}).get("run_id", "unknown"))


def _finished_record(attempt: Attempt) -> JSONDict:
    return {
        "run_id": attempt.run_id,
        "status": attempt.status.value,
        "claim_id": attempt.claim_id,
        "claim_token_hash": attempt.claim_token_hash,
        "result_digest": attempt.result_digest or digest(attempt.result),
        "intent_digest": digest(attempt.intent),
        "applied": False,
    }


_HEX_DIGITS = frozenset("0123456789abcdef")


def _check_hash(value: str) -> None:
    if len(value) != 64 or not _HEX_DIGITS.issuperset(value):
        raise InvalidArgument("claim_token_hash", "must be a lowercase hex SHA-256 digest")


register_topic(DispatchQueue.Snapshot.TOPIC, DispatchQueue.Snapshot)
