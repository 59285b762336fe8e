"""A run's snapshot as of the events a follower applied, never as of "whenever it ran".

A follower that read the newest state of a run would write rows that depend on how far the
journal had moved on while it worked, so a rebuild could differ from the incremental build.
Instead each row remembers the run and queue versions it reflects, and the snapshot is
rebuilt from the aggregates at exactly those versions, evaluated at the time of the newest
event seen for the run. The same events then give the same rows however they were batched.

The queue is hot: many runs' attempts share it. A follower keeps it between batches
(``QueueStates``) and rolls it forward through its events, recording each run's view at the
version wanted; ``queue_views`` loads it once at the lowest version a batch needs, for what
was not recorded. Runs are rolled forward too (``RunStates``): a follower sees every event
of a run, so a run it met before, or whose start is in the batch, needs no load at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from squidmesh_es.domain import DispatchQueue, WorkflowRun, queue_id
from squidmesh_es.read_model import RunSnapshot, build_run_snapshot

__all__ = [
    "MARK_COLUMNS",
    "QueueStates",
    "QueueView",
    "RunMark",
    "RunStates",
    "marks_of",
    "merge_marks",
    "queue_views",
    "snapshots_as_of",
]


@dataclass(frozen=True)
class RunMark:
    """The journal versions a run's rows reflect, and the time of the newest event seen."""

    run_version: int | None
    queue_version: int | None
    updated_at: datetime


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def run_of(event: Any) -> str | None:
    """The run an event of either aggregate is about, or ``None``."""
    if isinstance(event, WorkflowRun.Event):
        return str(event.originator_id)
    run_id = getattr(event, "run_id", None)
    if isinstance(run_id, str):
        return run_id
    key = getattr(event, "runnable_key", None)
    if isinstance(key, str):
        # Runnable keys read "<run_id>:<step>:<attempt>" (domain.runnable_key).
        return key.split(":", 1)[0]
    return None


def marks_of(events: Iterable[Any]) -> dict[str, RunMark]:
    """The versions and newest time each run reaches in ``events``."""
    reached: dict[str, list[Any]] = {}  # run id -> [run version, queue version, newest time]
    for event in events:
        run_id = run_of(event)
        if run_id is None:
            continue
        slot = 0 if isinstance(event, WorkflowRun.Event) else 1
        mark = reached.get(run_id)
        if mark is None:
            mark = reached[run_id] = [None, None, event.timestamp]
        elif event.timestamp > mark[2]:
            mark[2] = event.timestamp
        version = event.originator_version
        if mark[slot] is None or version > mark[slot]:
            mark[slot] = version
    return {run_id: RunMark(*mark) for run_id, mark in reached.items()}


def _merge(old: RunMark, new: RunMark) -> RunMark:
    return RunMark(
        run_version=_later(old.run_version, new.run_version),
        queue_version=_later(old.queue_version, new.queue_version),
        updated_at=max(old.updated_at, new.updated_at),
    )


MARK_COLUMNS = ("run_version", "queue_version", "updated_at")
"""The columns of a stored row that ``merge_marks`` reads."""


def merge_marks(
    marks: Mapping[str, RunMark], rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, RunMark]:
    """``marks`` moved past what the stored ``rows`` already reflect."""
    merged: dict[str, RunMark] = {}
    for run_id, mark in marks.items():
        row = rows.get(run_id)
        if row is None:
            merged[run_id] = mark
        else:
            stored = RunMark(row["run_version"], row["queue_version"], row["updated_at"])
            merged[run_id] = _merge(stored, mark)
    return merged


class RunStates:
    """Runs kept at the versions a follower reached, rolled forward through its batches.

    A run is rolled forward only through an unbroken run of its own events (versions
    ``n+1, n+2, ...`` after the kept ``n``, or from its start); anything else (a run met
    first mid-history, a batch another follower applied, an event kind this projection
    does not follow) loads it from the journal at the version wanted. So the states equal
    the journal's, however the events came. Ended runs are dropped; at most ``size`` kept.
    """

    def __init__(self, journal: Application[UUID], *, size: int = 2_000) -> None:
        self.journal = journal
        self.size = size
        self._runs: dict[str, WorkflowRun] = {}

    def at(self, run_id: str, version: int, events: Sequence[Any]) -> WorkflowRun:
        """``run_id`` at ``version``; ``events`` are the batch's events of that run, in order.

        The returned run is shared: read it, never change it.
        """
        run: WorkflowRun | None = self._runs.pop(run_id, None)
        current = run.version if run is not None else 0
        for event in events:
            if event.originator_version <= current:
                continue
            if event.originator_version != current + 1 or event.originator_version > version:
                break
            run = event.mutate(run)
            current = event.originator_version
        if run is None or current != version:
            run = self.journal.repository.get(UUID(run_id), version=version)
        if run.terminal_status is None:
            self._runs[run_id] = run
            while len(self._runs) > self.size:
                del self._runs[next(iter(self._runs))]
        return run


def snapshots_as_of(
    journal: Application[UUID],
    marks: Mapping[str, RunMark],
    *,
    runs: RunStates | None = None,
    queues: QueueStates | None = None,
    events: Sequence[Any] = (),
) -> dict[str, RunSnapshot]:
    """Each marked run's snapshot at its marked versions and time.

    Runs whose start is not among the events seen yet (their queue entry came first) are
    left out: their ``RunStarted`` follows and builds them. Given ``runs`` and ``queues``,
    the batch's ``events`` roll them forward instead of loading each one.
    """
    events_of: dict[str, list[Any]] = {}
    queue_events: dict[UUID, list[Any]] = {}
    for event in events:
        if isinstance(event, WorkflowRun.Event):
            events_of.setdefault(str(event.originator_id), []).append(event)
        elif isinstance(event, DispatchQueue.Event):
            queue_events.setdefault(event.originator_id, []).append(event)
    loaded: dict[str, WorkflowRun] = {}
    for run_id, mark in marks.items():
        if mark.run_version is None:
            continue
        if runs is not None:
            loaded[run_id] = runs.at(run_id, mark.run_version, events_of.get(run_id, []))
        else:
            loaded[run_id] = journal.repository.get(UUID(run_id), version=mark.run_version)
    runs_by_id = loaded
    by_queue: dict[str, list[str]] = {}
    for run_id, run in runs_by_id.items():
        by_queue.setdefault(run.dispatch_queue, []).append(run_id)
    snapshots: dict[str, RunSnapshot] = {}
    for queue_name, run_ids in by_queue.items():
        wanted = {r: marks[r].queue_version for r in run_ids}
        if queues is not None:
            views = queues.views(queue_name, wanted, queue_events.get(queue_id(queue_name), []))
        else:
            views = queue_views(journal, queue_name, wanted)
        for run_id, (attempts, version, anomalies) in views.items():
            snapshots[run_id] = build_run_snapshot(
                runs_by_id[run_id],
                attempts,
                now=marks[run_id].updated_at,
                queue_version=version,
                queue_anomalies=anomalies,
            )
    return snapshots


QueueView = tuple[Sequence[Any], int | None, Sequence[dict[str, Any]]]
"""A run's live attempts, the queue's version and the queue's anomalies at that version."""


def queue_views(
    journal: Application[UUID], queue_name: str, wanted: Mapping[str, int | None]
) -> dict[str, QueueView]:
    """Each run's view of its queue at its wanted version, loaded from the journal.

    The queue is loaded once at the lowest version wanted and rolled forward through its
    own events, instead of once per run.
    """
    views: dict[str, QueueView] = {r: ([], None, []) for r, v in wanted.items() if v is None}
    pending = sorted((v, r) for r, v in wanted.items() if v is not None)
    if not pending:
        return views
    qid = queue_id(queue_name)
    queue: DispatchQueue = journal.repository.get(qid, version=pending[0][0])
    events = iter(journal.repository.event_store.get(qid, gt=queue.version, lte=pending[-1][0]))
    for version, run_id in pending:
        while queue.version < version:
            event: Any = next(events)
            queue = event.mutate(queue)
        views[run_id] = (queue.attempts_of(run_id), queue.version, list(queue.anomalies))
    return views


class QueueStates:
    """Queues kept at the version a follower reached, rolled forward through its batches.

    Each batch wants every touched run's view of its queue (live attempts, anomalies) at
    one version: that of the run's last queue event the projection followed. The queue is
    rolled forward through all its events up to the highest version wanted (the batch's,
    and from the journal those the projection does not follow), recording each run's view
    as the queue passes the version wanted for it. A later batch that wants the same run at
    the same version (its events came, its queue's did not) finds the view recorded. Any
    other version (a queue met mid-history, a batch another follower applied) is loaded
    as ``queue_views`` does. At most ``size`` runs' views are kept.
    """

    def __init__(self, journal: Application[UUID], *, size: int = 10_000) -> None:
        self.journal = journal
        self.size = size
        self._queues: dict[UUID, DispatchQueue] = {}
        self._views: dict[str, QueueView] = {}
        self._anomalies: tuple[tuple[UUID, int] | None, list[dict[str, Any]]] = (None, [])

    def views(
        self, queue_name: str, wanted: Mapping[str, int | None], events: Sequence[Any]
    ) -> dict[str, QueueView]:
        """Each run's view of ``queue_name`` at its wanted version.

        ``events`` are the batch's events of that queue, in order.
        """
        views: dict[str, QueueView] = {}
        missing: dict[str, int | None] = {}
        if any(v is not None for v in wanted.values()):
            self._roll(queue_id(queue_name), wanted, events)
        for run_id, version in wanted.items():
            view = self._views.get(run_id) if version is not None else ([], None, [])
            if view is not None and view[1] == version:
                views[run_id] = view
            else:
                missing[run_id] = version
        if missing:
            views.update(queue_views(self.journal, queue_name, missing))
        return views

    def _roll(self, qid: UUID, wanted: Mapping[str, int | None], events: Sequence[Any]) -> None:
        versions = [v for v in wanted.values() if v is not None]
        target = max(versions)
        queue = self._queues.get(qid)
        if queue is None:
            queue = self.journal.repository.get(qid, version=min(versions))
            for run_id, version in wanted.items():
                if version == queue.version:
                    self._record(run_id, qid, queue)
        self._queues[qid] = queue
        if queue.version >= target:
            return
        have = {
            e.originator_version: e
            for e in events
            if queue.version < e.originator_version <= target
        }
        if len(have) != target - queue.version:
            store = self.journal.repository.event_store
            for stored in store.recorder.select_events(qid, gt=queue.version, lte=target):
                if stored.originator_version not in have:
                    have[stored.originator_version] = store.mapper.to_domain_event(stored)
        del self._queues[qid]  # while half rolled: an error leaves it to be loaded afresh
        for version in range(queue.version + 1, target + 1):
            event = have[version]
            queue = event.mutate(queue)
            touched = run_of(event)
            if touched is not None and wanted.get(touched) == version:
                self._record(touched, qid, queue)
        self._queues[qid] = queue

    def _record(self, run_id: str, qid: UUID, queue: DispatchQueue) -> None:
        # The anomalies only change when one is noted, so runs share a copy until then.
        if self._anomalies[0] != (qid, queue.anomaly_count):
            self._anomalies = ((qid, queue.anomaly_count), list(queue.anomalies))
        self._views.pop(run_id, None)
        self._views[run_id] = (queue.attempts_of(run_id), queue.version, self._anomalies[1])
        while len(self._views) > self.size:
            del self._views[next(iter(self._views))]


def run_ids(events: Sequence[Any]) -> set[str]:
    """The runs ``events`` are about."""
    return {r for r in (run_of(e) for e in events) if r is not None}
