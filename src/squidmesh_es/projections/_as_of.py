"""A run's snapshot as of the events a follower applied, never as of "whenever it ran".

A follower that read the newest state of a run would write rows that depend on how far the
journal had moved on while it worked, so a rebuild could differ from the incremental build.
Instead each row remembers the run and queue versions it reflects, and the snapshot is
rebuilt from the aggregates at exactly those versions, evaluated at the time of the newest
event seen for the run. The same events then give the same rows however they were batched.

The queue is hot: many runs' attempts share it. Within a batch it is loaded once at the
lowest version needed and rolled forward through its own events, instead of once per run.
Runs are rolled forward too (``RunStates``): a follower sees every event of a run, so a run
it met before, or whose start is in the batch, needs no load at all.
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

__all__ = ["RunMark", "RunStates", "marks_of", "merge_marks", "snapshots_as_of"]


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
    marks: dict[str, RunMark] = {}
    for event in events:
        run_id = run_of(event)
        if run_id is None:
            continue
        version = event.originator_version
        is_run = isinstance(event, WorkflowRun.Event)
        new = RunMark(
            run_version=version if is_run else None,
            queue_version=None if is_run else version,
            updated_at=event.timestamp,
        )
        old = marks.get(run_id)
        marks[run_id] = new if old is None else _merge(old, new)
    return marks


def _merge(old: RunMark, new: RunMark) -> RunMark:
    return RunMark(
        run_version=_later(old.run_version, new.run_version),
        queue_version=_later(old.queue_version, new.queue_version),
        updated_at=max(old.updated_at, new.updated_at),
    )


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
    events: Sequence[Any] = (),
) -> dict[str, RunSnapshot]:
    """Each marked run's snapshot at its marked versions and time.

    Runs whose start is not among the events seen yet (their queue entry came first) are
    left out: their ``RunStarted`` follows and builds them. Given ``runs``, the batch's
    ``events`` roll them forward instead of loading each one.
    """
    events_of: dict[str, list[Any]] = {}
    for event in events:
        if isinstance(event, WorkflowRun.Event):
            events_of.setdefault(str(event.originator_id), []).append(event)
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
        for run_id, (attempts, version, anomalies) in _queue_views(
            journal, queue_name, wanted
        ).items():
            snapshots[run_id] = build_run_snapshot(
                runs_by_id[run_id],
                attempts,
                now=marks[run_id].updated_at,
                queue_version=version,
                queue_anomalies=anomalies,
            )
    return snapshots


_QueueView = tuple[list[Any], int | None, list[dict[str, Any]]]


def _queue_views(
    journal: Application[UUID], queue_name: str, wanted: Mapping[str, int | None]
) -> dict[str, _QueueView]:
    """Each run's live attempts, queue version and queue anomalies at its wanted version."""
    views: dict[str, _QueueView] = {r: ([], None, []) for r, v in wanted.items() if v is None}
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


def run_ids(events: Sequence[Any]) -> set[str]:
    """The runs ``events`` are about."""
    return {r for r in (run_of(e) for e in events) if r is not None}
