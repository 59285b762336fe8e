"""The three projections: run catalog, run index and run inspection.

Each is a library ``Projection`` over the shared view: ``process_event`` handles one event
(so a library runner can drive it), and ``process_batch`` handles many with one write and one
tracking position, which is how our followers drive it. Rows come from the aggregates at the
versions the events reached (see ``_as_of``), so the rules that give a run its status live
in the domain and read model, not here.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from squidmesh_es.domain import DispatchQueue, WorkflowRun
from squidmesh_es.projections._as_of import (
    MARK_COLUMNS,
    QueueStates,
    RunStates,
    marks_of,
    merge_marks,
    snapshots_as_of,
)
from squidmesh_es.projections._contract import CATALOG, INDEX, INSPECTION, Table
from squidmesh_es.projections._view import Changes, ProjectionView, Row
from squidmesh_es.read_model import RunSnapshot, summarize

__all__ = [
    "INDEX_INPUT_PREFIX",
    "RunCatalog",
    "RunIndex",
    "RunInspection",
    "RunProjection",
    "START_SIGNALS",
]

_RUN_EVENTS = (
    WorkflowRun.RunStarted,
    WorkflowRun.CommandReceived,
    WorkflowRun.RunnablesPlanned,
    WorkflowRun.RunnableApplied,
    WorkflowRun.ManualStepPaused,
    WorkflowRun.ManualStepResolved,
    WorkflowRun.ChildRunStarted,
    WorkflowRun.DynamicWorkRecorded,
    WorkflowRun.RunEnded,
    WorkflowRun.RunDataForgotten,
)
_QUEUE_STATUS_EVENTS = (
    DispatchQueue.RunQueued,
    DispatchQueue.AttemptScheduled,
    DispatchQueue.AttemptClaimed,
    DispatchQueue.AttemptCompleted,
    DispatchQueue.AttemptFailed,
    DispatchQueue.ResultApplied,
    DispatchQueue.RunClosed,
)
_QUEUE_DETAIL_EVENTS = (DispatchQueue.AttemptHeartbeat, DispatchQueue.LiveWakeupEmitted)

START_SIGNALS = frozenset({"start_run", "start_cron"})
"""Command receipts whose idempotency key the index keeps as ``idempotency_key``."""

INDEX_INPUT_PREFIX = "input."
"""Index keys a workflow declares are stored as ``input.<name>``."""


def _topics(*classes: type[Any]) -> tuple[str, ...]:
    return tuple(str(c.TOPIC) for c in classes)


class RunProjection(Projection[ProjectionView]):
    """A projection of the runtime's journal into the view's tables."""

    tables: tuple[Table, ...]
    """The tables this projection owns (replaced by a rebuild)."""

    def __init__(self, view: ProjectionView, journal: Application[UUID]) -> None:
        super().__init__(view)
        self.journal = journal

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Apply one event and move to its notification id in one transaction.

        The position is kept under this projection's name, not the ``tracking``'s
        application name, so every driver (our followers, a ``ProjectionRunner``) moves the
        one position ``status`` reports.
        """
        self.process_batch([domain_event], Tracking(self.name, tracking.notification_id))

    def process_batch(self, events: Sequence[Any], tracking: Tracking) -> None:
        """Apply ``events`` and move to ``tracking`` in one transaction.

        ``tracking`` may lie past the last event: the batch then also skips the journal's
        events this projection does not follow, so its position keeps up with the journal.

        Raises:
            eventsourcing.persistence.IntegrityError: ``tracking`` is not past the current
                position (the batch was already applied); nothing was written.
        """
        self.view.write(self.name, self.changes(events), tracking, events=len(events))

    def beside(self) -> RunProjection:
        """This projection writing to tables beside its own, under its name + ``.rebuild``.

        A rebuild replays the journal into those while readers keep the current tables,
        then the view switches them in (``ProjectionView.switch``).
        """
        rebuilding = copy.copy(self)
        rebuilding.name = f"{self.name}.rebuild"
        rebuilding.tables = tuple(t.beside() for t in self.tables)
        return rebuilding

    @abstractmethod
    def changes(self, events: Sequence[Any]) -> Changes:
        """The rows ``events`` produce."""


class _SnapshotProjection(RunProjection):
    """A projection whose rows are a function of each touched run's snapshot, one table."""

    def __init__(self, view: ProjectionView, journal: Application[UUID]) -> None:
        super().__init__(view, journal)
        self._runs = RunStates(journal)
        self._queues = QueueStates(journal)

    def beside(self) -> RunProjection:
        """This projection writing beside its tables, with run and queue states of its own."""
        rebuilding = super().beside()
        assert isinstance(rebuilding, _SnapshotProjection)
        rebuilding._runs = RunStates(self.journal)
        rebuilding._queues = QueueStates(self.journal)
        return rebuilding

    def changes(self, events: Sequence[Any]) -> Changes:
        """Each touched run's row, at the versions the events and the stored row reach."""
        (table,) = self.tables
        marks = marks_of(events)
        marks = merge_marks(marks, self.view.rows(table, marks, columns=MARK_COLUMNS))
        changes = Changes()
        states = snapshots_as_of(
            self.journal, marks, runs=self._runs, queues=self._queues, events=events
        )
        for run_id, snapshot in states.items():
            mark = marks[run_id]
            row = self.row(snapshot)
            row.update(
                run_id=run_id,
                updated_at=mark.updated_at,
                run_version=mark.run_version,
                queue_version=mark.queue_version,
            )
            changes.add(table, row)
        return changes

    @abstractmethod
    def row(self, snapshot: RunSnapshot) -> Row:
        """The row's columns other than the run id, times and versions."""


class RunCatalog(_SnapshotProjection):
    """A row per run with what listing and filtering need: ``list_runs`` reads it."""

    name = "run_catalog"
    topics = _topics(*_RUN_EVENTS, *_QUEUE_STATUS_EVENTS)
    tables = (CATALOG,)

    def row(self, snapshot: RunSnapshot) -> Row:
        """Summary columns; never inputs, outputs, errors, claims or idempotency keys."""
        summary = summarize(snapshot)
        parent = snapshot.parent_run or {}
        return {
            "workflow": summary.workflow,
            "trigger": snapshot.trigger,
            "queue": summary.queue,
            "status": summary.status.value,
            "terminal": summary.terminal,
            "terminal_status": summary.terminal_status,
            "definition_version": summary.definition_version,
            "definition_fingerprint": snapshot.definition_fingerprint,
            "parent_run_id": _uuid_text(parent.get("run_id")),
            "replayed_from_run_id": _uuid_text(snapshot.replayed_from_run_id),
            "started_at": snapshot.started_at,
            "ended_at": snapshot.ended_at,
            "deadline": summary.deadline.model_dump(mode="json") if summary.deadline else None,
            "anomalies": summary.anomalies,
            "anomaly_count": snapshot.anomaly_count,
        }


class RunInspection(_SnapshotProjection):
    """The latest snapshot document of each run, for dashboards that must not load events."""

    name = "run_inspection"
    topics = _topics(*_RUN_EVENTS, *_QUEUE_STATUS_EVENTS, *_QUEUE_DETAIL_EVENTS)
    tables = (INSPECTION,)

    def row(self, snapshot: RunSnapshot) -> Row:
        """The whole snapshot as JSON (full operator detail: hosts redact before showing)."""
        return {"document": snapshot.model_dump(mode="json")}


class RunIndex(RunProjection):
    """Lookup keys of each run, fixed when it starts.

    Keys: ``workflow``, ``trigger``, ``parent_run_id``, ``replayed_from_run_id``,
    ``idempotency_key`` (of the start command), ``schedule_key`` and ``schedule_signal_id``
    (cron starts), and
    ``input.<name>`` for each value the run's start recorded under ``context["index"]``.
    The ``input.`` keys come from the payload: a forgotten run loses them.
    """

    name = "run_index"
    topics = _topics(
        WorkflowRun.RunStarted, WorkflowRun.CommandReceived, WorkflowRun.RunDataForgotten
    )
    tables = (INDEX,)

    def changes(self, events: Sequence[Any]) -> Changes:
        """Index rows of the started runs and of their start commands' idempotency keys."""
        (table,) = self.tables
        changes = Changes()
        for event in events:
            run_id = str(event.originator_id)
            if isinstance(event, WorkflowRun.RunDataForgotten):
                changes.remove_keys(table, run_id, INDEX_INPUT_PREFIX)
                continue
            for key, value in _keys_of(event):
                changes.add(
                    table,
                    {"key": key, "value": value, "run_id": run_id, "started_at": event.timestamp},
                )
        return changes


def _keys_of(event: Any) -> list[tuple[str, str]]:
    if isinstance(event, WorkflowRun.CommandReceived):
        if event.signal_type in START_SIGNALS and event.idempotency_key:
            return [("idempotency_key", str(event.idempotency_key))]
        return []
    if not isinstance(event, WorkflowRun.RunStarted):
        return []
    context = _mapping(event.context)
    parent = _mapping(context.get("parent"))
    schedule = _mapping(context.get("schedule"))
    declared = _mapping(context.get("index"))
    pairs: list[tuple[str, Any]] = [
        ("workflow", event.workflow),
        ("trigger", event.trigger),
        ("parent_run_id", _uuid_text(parent.get("run_id"))),
        ("replayed_from_run_id", _uuid_text(getattr(event, "replayed_from_run_id", None))),
        ("schedule_key", schedule.get("idempotency_key")),
        ("schedule_signal_id", schedule.get("signal_id")),
    ]
    pairs += [(INDEX_INPUT_PREFIX + str(k), v) for k, v in sorted(declared.items())]
    return [(k, v) for k, v in ((k, index_value(v)) for k, v in pairs) if v is not None]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def index_value(value: object) -> str | None:
    """How a scalar is stored in the index (``true``/``false`` for booleans); else ``None``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | UUID):
        return str(value)
    return None


def _uuid_text(value: object) -> str | None:
    try:
        return str(UUID(str(value))) if value is not None else None
    except ValueError:
        return None
