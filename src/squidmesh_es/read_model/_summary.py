"""`RunSummary`: the index-safe row of a run listing.

A summary is what a list of runs may show to anyone allowed to see that the runs exist:
identity, status and deadline health. It never carries inputs, outputs, errors, claim data
or idempotency keys (api catalog 2.11), so listings need no redaction.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import JsonValue

from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model._deadline import DeadlineView, require_aware
from squidmesh_es.read_model._json import JsonMap, ReadModel
from squidmesh_es.read_model._snapshot import RunSnapshot, build_run_snapshot
from squidmesh_es.read_model._vocab import SnapshotStatus

__all__ = ["SUMMARY_ANOMALY_KEYS", "RunSummary", "summarize"]

SUMMARY_ANOMALY_KEYS = frozenset(
    {"reason", "source", "event", "version", "at", "runnable_key", "step", "child_run_id"}
)
"""The anomaly fields a summary keeps: what went wrong and where, never claim data."""


class RunSummary(ReadModel):
    """One run in a listing; build it with `summarize` or directly from catalog rows."""

    run_id: str
    workflow: str
    queue: str
    status: SnapshotStatus
    terminal: bool
    terminal_status: str | None
    definition_version: str | None
    indexed_at: datetime
    """When the run entered the catalog; listings sort on it, newest first."""
    started_at: datetime
    """When the run started."""
    updated_at: datetime
    """When the run's last event (of its run or queue journal) was recorded."""
    ended_at: datetime | None = None
    """When the run reached a terminal status; ``None`` while it is open."""
    trigger: str | None = None
    """The trigger that started the run, when it names one."""
    deadline: DeadlineView | None = None
    anomalies: list[JsonMap] = []
    """Anomalies with only `SUMMARY_ANOMALY_KEYS` kept."""
    thread_revision: int = 0
    """The run journal's version the row was read at."""


def summarize(
    source: RunSnapshot | WorkflowRun,
    *,
    now: datetime | None = None,
    indexed_at: datetime | None = None,
) -> RunSummary:
    """The listing row of a snapshot, or of a run read without its queue.

    From a bare run the status cannot tell a retry from other running work, because retries
    live in the queue; pass a snapshot where that matters.

    Args:
        source: a snapshot, or the run aggregate.
        now: when the run's deadline is evaluated; required for a run, and for a snapshot
            it re-evaluates the deadline (default: the snapshot's own ``as_of``).
        indexed_at: the catalog time; defaults to the run's start.

    Raises:
        InvalidArgument: a run was given without ``now``, or ``now`` is naive.
    """
    if now is not None:
        require_aware(now)
    if isinstance(source, WorkflowRun):
        if now is None:
            raise InvalidArgument("now", "is required to summarize a run")
        source = build_run_snapshot(source, (), now=now)
    deadline = source.deadline
    if deadline is not None:
        # A runnable key doubles as the default idempotency key: not for an index row.
        deadline = deadline.model_copy(update={"runnable_key": None})
        if now is not None:
            deadline = deadline.at(now)
    return RunSummary(
        run_id=source.run_id,
        workflow=source.workflow,
        queue=source.queue,
        status=source.status,
        terminal=source.terminal,
        terminal_status=source.terminal_status,
        definition_version=source.definition_version,
        indexed_at=indexed_at or source.started_at,
        started_at=source.started_at,
        updated_at=source.updated_at,
        ended_at=source.ended_at,
        trigger=source.trigger,
        deadline=deadline,
        anomalies=[_index_safe(a) for a in source.anomalies],
        thread_revision=source.thread_revisions.run,
    )


def _index_safe(anomaly: dict[str, JsonValue]) -> JsonMap:
    return {k: v for k, v in anomaly.items() if k in SUMMARY_ANOMALY_KEYS}
