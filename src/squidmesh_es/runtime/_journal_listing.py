"""Listing runs straight from the journal, for a runtime without attached projections.

The run catalog answers ``list_runs`` from an index. Without it, the journal still can: the
``RunStarted`` events name every run with its workflow, trigger, queue, parent and start
time, so filtering and ordering need no run loaded; only the runs a page shows (and, with a
``status`` filter, those it skips) are loaded and summarized from their journals. It costs a
read of every run start on each call, so it suits first steps and small journals; attach
``squidmesh_es.projections.Projections`` for anything larger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model import RunSummary, SnapshotStatus, summarize
from squidmesh_es.workflow import Workflow

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = ["JOURNAL_FILTERS", "list_runs_from_journal", "run_starts"]

JOURNAL_FILTERS = frozenset({"queue", "trigger", "parent_run_id"})
"""Filters the journal answers besides ``workflow`` and ``status``; the others need the
catalog's index (``idempotency_key``, ``schedule_key``, ``schedule_signal_id``, ``index``,
``after``)."""

MAX_LIMIT = 1000
"""The largest page, as for the catalog."""

_PAGE = 500


def list_runs_from_journal(
    mesh: SquidMesh,
    *,
    workflow: str | type[Workflow] | None,
    status: str | None,
    limit: int,
    now: datetime,
    filters: dict[str, Any],
) -> list[RunSummary]:
    """Run summaries read from the journal, newest start first (then highest run id).

    Raises:
        InvalidArgument: a bad limit or status, or a filter only the catalog answers.
    """
    unsupported = sorted(set(filters) - JOURNAL_FILTERS)
    if unsupported:
        raise InvalidArgument(
            unsupported[0],
            "needs the run catalog: attach it with squidmesh_es.projections.Projections.attach",
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    if status is not None and status not in {s.value for s in SnapshotStatus}:
        raise InvalidArgument("status", "is not a run status")
    wanted = {
        "workflow": workflow.name if isinstance(workflow, type) else workflow,
        "queue": filters.get("queue"),
        "trigger": filters.get("trigger"),
        "parent_run_id": _parent_id(filters.get("parent_run_id")),
    }
    starts = [s for s in run_starts(mesh) if _matches(s, wanted)]
    starts.sort(key=lambda s: (s.timestamp, str(s.originator_id)), reverse=True)
    summaries: list[RunSummary] = []
    for started in starts:
        summary = summarize(mesh.inspect_run(started.originator_id, now=now), now=now)
        if status is None or summary.status.value == status:
            summaries.append(summary)
            if len(summaries) == limit:
                break
    return summaries


def run_starts(mesh: SquidMesh) -> Iterator[WorkflowRun.RunStarted]:
    """Every run's start event, in journal order."""
    topics = [WorkflowRun.RunStarted.TOPIC]
    start = 1
    while True:
        page = mesh.recorder.select_notifications(start=start, limit=_PAGE, topics=topics)
        for notification in page:
            event = mesh.mapper.to_domain_event(notification)
            if isinstance(event, WorkflowRun.RunStarted):
                yield event
        if len(page) < _PAGE:
            return
        start = page[-1].id + 1


def _matches(started: WorkflowRun.RunStarted, wanted: dict[str, str | None]) -> bool:
    parent = started.context.get("parent") if isinstance(started.context, dict) else None
    facts = {
        "workflow": started.workflow,
        "queue": started.queue,
        "trigger": started.trigger,
        "parent_run_id": str(parent.get("run_id")) if isinstance(parent, dict) else None,
    }
    return all(value is None or facts[key] == value for key, value in wanted.items())


def _parent_id(value: object) -> str | None:
    if value is None:
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise InvalidArgument("parent_run_id", "is not a run id") from None
