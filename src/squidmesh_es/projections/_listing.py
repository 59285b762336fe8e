"""``list_runs``: pages of run summaries from the catalog and index, never from events.

Pages are keyset pages: a cursor holds the ``(started_at, run_id)`` of the last row shown,
and the next page seeks to it in the catalog's ordered indexes, so page 1,000 costs what
page 1 does (an offset would read and discard every row before it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections._projection import INDEX_INPUT_PREFIX, index_value
from squidmesh_es.projections._view import ProjectionView, Row, RunQuery
from squidmesh_es.read_model import DeadlineView, RunSummary, SnapshotStatus
from squidmesh_es.workflow import Workflow

__all__ = ["MAX_LIMIT", "RunList", "cursor_before", "list_runs", "run_cursor"]

MAX_LIMIT = 1000
"""The largest page ``list_runs`` returns."""


class RunList(list[RunSummary]):
    """A page of run summaries, newest first, with the cursor of the page after it."""

    next_cursor: str | None
    """Pass it as ``after`` for the next page; ``None`` on the last page."""

    def __init__(self, runs: list[RunSummary], next_cursor: str | None) -> None:
        super().__init__(runs)
        self.next_cursor = next_cursor


def run_cursor(summary: RunSummary) -> str:
    """The cursor that continues a listing after ``summary``."""
    raw = json.dumps([summary.indexed_at.isoformat(), summary.run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_before(moment: datetime) -> str:
    """A cursor that lists runs started strictly before ``moment``: a time range's upper end.

    No run id sorts below the nil UUID, so a run started exactly at ``moment`` is left out.
    """
    raw = json.dumps([moment.isoformat(), str(UUID(int=0))]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started_at, run_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(started_at), str(run_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument("after", "is not a cursor returned by list_runs") from exc


def list_runs(
    view: ProjectionView,
    *,
    workflow: str | type[Workflow] | None = None,
    status: str | None = None,
    queue: str | None = None,
    trigger: str | None = None,
    parent_run_id: str | None = None,
    replayed_from_run_id: str | None = None,
    idempotency_key: str | None = None,
    schedule_key: str | None = None,
    schedule_signal_id: str | None = None,
    index: Mapping[str, str | int | bool] | None = None,
    limit: int = 50,
    after: str | None = None,
    now: datetime | None = None,
) -> RunList:
    """Run summaries from the catalog, newest first, at most ``limit``.

    Args:
        view: the projections' view (``Projections.view``).
        workflow: a workflow class or name.
        status: a reader status (``pending``, ``running``, ``retrying``, ``paused``,
            ``completed``, ``failed``, ``cancelled``) as of the run's last event.
        queue: the run's queue.
        trigger: the trigger that started the run.
        parent_run_id: runs started as children of this run.
        replayed_from_run_id: replays of this run (through the run index; runs indexed
            before 0.2 are found once the index is rebuilt).
        idempotency_key: the run started with this key.
        schedule_key: the cron run deduplicated by this key (``context["schedule"]
            ["idempotency_key"]``: the delivery's ``idempotency_key``, else its signal id).
            Only the activation's own run has it; its replays do not.
        schedule_signal_id: runs of the cron activation with this signal id (given or
            derived from the window): the activation's run and its replays.
        index: values of keys the workflow declared (``context["index"]`` at start).
        limit: page size, 1 to ``MAX_LIMIT``.
        after: ``next_cursor`` of the previous page.
        now: re-evaluate each row's deadline status at this time.

    Raises:
        InvalidArgument: a bad limit, status, cursor, index or schedule value.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    if status is not None and status not in {s.value for s in SnapshotStatus}:
        raise InvalidArgument("status", "is not a run status")
    keys: list[tuple[str, str]] = []
    if idempotency_key is not None:
        keys.append(("idempotency_key", idempotency_key))
    schedule: tuple[tuple[str, object], ...] = (
        ("schedule_key", schedule_key),
        ("schedule_signal_id", schedule_signal_id),
    )
    for key, given in schedule:
        if given is None:
            continue
        if not isinstance(given, str):
            # The index holds the strings start_cron recorded; a number would silently
            # match nothing.
            raise InvalidArgument(key, "must be a string")
        keys.append((key, given))
    for name, value in sorted((index or {}).items()):
        text = index_value(value)
        if text is None:
            raise InvalidArgument("index", f"{name!r} must be a string, integer or boolean")
        keys.append((INDEX_INPUT_PREFIX + name, text))
    if parent_run_id is not None:
        try:
            parent_run_id = str(UUID(str(parent_run_id)))
        except ValueError as exc:
            raise InvalidArgument("parent_run_id", "is not a run id") from exc
    if replayed_from_run_id is not None:
        try:
            keys.append(("replayed_from_run_id", str(UUID(str(replayed_from_run_id)))))
        except ValueError as exc:
            raise InvalidArgument("replayed_from_run_id", "is not a run id") from exc
    query = RunQuery(
        limit=limit + 1,
        workflow=workflow if workflow is None or isinstance(workflow, str) else workflow.name,
        status=status,
        queue=queue,
        trigger=trigger,
        parent_run_id=parent_run_id,
        index=tuple(keys),
        after=_parse_cursor(after) if after is not None else None,
    )
    rows = view.select_runs(query)
    runs = [_summary(row, now) for row in rows[:limit]]
    return RunList(runs, run_cursor(runs[-1]) if len(rows) > limit else None)


def _summary(row: Row, now: datetime | None) -> RunSummary:
    deadline = DeadlineView.model_validate(row["deadline"]) if row["deadline"] else None
    if deadline is not None and now is not None:
        deadline = deadline.at(now)
    return RunSummary(
        run_id=row["run_id"],
        workflow=row["workflow"],
        queue=row["queue"],
        status=SnapshotStatus(row["status"]),
        terminal=row["terminal"],
        terminal_status=row["terminal_status"],
        definition_version=row["definition_version"],
        indexed_at=row["started_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
        trigger=row["trigger"],
        deadline=deadline,
        anomalies=row["anomalies"],
        thread_revision=row["run_version"],
    )
