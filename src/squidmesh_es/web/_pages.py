"""The dashboard's pages: runs, one run, queues and schedules; reads only.

Each page reads one public read model (the catalog for lists, inspection, explanation and
graph for a run, the queue aggregate's queries, the registered cron triggers) and shows it
redacted to the dashboard's scope by the project's one redaction policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import Response

from squidmesh_es.errors import InvalidArgument, InvalidRunId, RunNotFound, SquidMeshError
from squidmesh_es.projections import MAX_LIMIT, cursor_before
from squidmesh_es.read_model import (
    RunSnapshot,
    SnapshotStatus,
    explain_run_snapshot,
    redact,
)
from squidmesh_es.redaction import REDACTED
from squidmesh_es.runtime import cron_ticks
from squidmesh_es.web._graph_svg import NODE_COLOURS, graph_svg
from squidmesh_es.web._queues import queue_stats
from squidmesh_es.web._security import CSRF_COOKIE, csrf_token
from squidmesh_es.workflow import TriggerType

if TYPE_CHECKING:
    from squidmesh_es.web._dashboard import Dashboard

__all__ = [
    "dashboard_of",
    "queues_page",
    "render",
    "run_page",
    "runs_page",
    "schedules_page",
    "show_run",
]

TEXT_FILTERS = ("status", "workflow", "queue", "trigger", "idempotency_key")
"""Runs-page filters passed to ``list_runs`` as they are typed."""

NEXT_FIRE_TIMES = 3
"""How many coming ticks the schedules page lists per trigger."""

_HORIZONS = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400))


def dashboard_of(request: Request) -> Dashboard:
    """The `Dashboard` the app serving ``request`` was created with."""
    return cast("Dashboard", request.app.state.dashboard)


def render(
    request: Request, template: str, context: Mapping[str, Any], *, status_code: int = 200
) -> Response:
    """``template`` with the dashboard's common context; sets the CSRF cookie on first visit."""
    dashboard = dashboard_of(request)
    token, new = csrf_token(request)
    response = dashboard.templates.TemplateResponse(
        request,
        template,
        {
            "csrf": token,
            "scope": dashboard.scope.value,
            "refresh_seconds": int(dashboard.refresh.total_seconds()),
            "controls": dashboard.access,
            **context,
        },
        status_code=status_code,
    )
    if new:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
    return response


def runs_page(request: Request) -> Response:
    """The catalog, newest first, filtered and paged by keyset cursor."""
    dashboard = dashboard_of(request)
    params = request.query_params
    fields = (*TEXT_FILTERS, "index", "since", "until")
    form = {name: params.get(name, "").strip() for name in fields}
    error: SquidMeshError | None = None
    runs: list[Any] = []
    next_url: str | None = None
    try:
        filters: dict[str, Any] = {k: form[k] for k in TEXT_FILTERS if form[k]}
        filters["index"] = _index(form["index"])
        since = _moment("since", form["since"])
        until = _moment("until", form["until"])
        after = params.get("after") or (cursor_before(until) if until else None)
        limit = _limit(params.get("limit", "50"))
        with dashboard.catalog() as catalog:
            page = catalog.list_runs(**filters, limit=limit, after=after, now=dashboard.mesh.now())
        runs = list(page)
        cursor = page.next_cursor
        if since is not None and any(r.indexed_at < since for r in runs):
            # Newest first: once one run is older than the range, every later one is too.
            runs = [r for r in runs if r.indexed_at >= since]
            cursor = None
        if cursor is not None:
            next_url = str(request.url.include_query_params(after=cursor))
    except SquidMeshError as exc:
        error = exc
    return render(
        request,
        "runs.html",
        {
            "page": "runs",
            "form": form,
            "statuses": [s.value for s in SnapshotStatus],
            "runs": runs,
            "next_url": next_url,
            "first_url": str(request.url.remove_query_params("after")),
            "paged": "after" in params,
            "error": error,
            "colours": NODE_COLOURS,
        },
        status_code=400 if error else 200,
    )


REPLAYS_SHOWN = 20
"""The newest replays of a run linked from its page."""


def run_page(request: Request) -> Response:
    """One run: status, explanation, graph, timeline, context and receipts, lineage."""
    done = request.query_params.get("done")
    return show_run(request, str(request.path_params["run_id"]), done=done)


def show_run(
    request: Request,
    run_id: str,
    *,
    done: str | None = None,
    refusal: SquidMeshError | None = None,
    form: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The run page, with the outcome of a control that was just pressed, if any."""
    dashboard = dashboard_of(request)
    try:
        with dashboard.journal() as mesh:
            snapshot = mesh.inspect_run(run_id, include_history=True)
            graph = mesh.inspect_run_graph(run_id, now=snapshot.as_of)
    except (RunNotFound, InvalidRunId) as exc:
        return render(
            request,
            "error.html",
            {"page": "runs", "code": exc.code, "message": str(exc)},
            status_code=404,
        )
    with dashboard.catalog() as catalog:
        replays = list(
            catalog.list_runs(replayed_from_run_id=run_id, limit=REPLAYS_SHOWN, now=snapshot.as_of)
        )
    scope = dashboard.scope
    explanation = redact(explain_run_snapshot(snapshot, now=snapshot.as_of), scope)
    shown = redact(snapshot, scope)
    return render(
        request,
        "run.html",
        {
            "page": "runs",
            "run": shown,
            "explanation": explanation,
            "graph": graph_svg(redact(graph, scope)),
            "timeline": timeline(shown),
            "replays": replays,
            "available": available_controls(snapshot),
            "done": done,
            "refusal": refusal,
            "form": form or {},
            "request_id": uuid.uuid4().hex,
        },
        status_code=status_code,
    )


def available_controls(snapshot: RunSnapshot) -> list[str]:
    """The controls that make sense for the run now; the runtime still has the last word."""
    controls: list[str] = []
    manual = snapshot.manual_state
    if manual is not None and manual.kind == "approval" and not snapshot.terminal:
        controls += ["approve", "reject"]
    elif manual is not None and not snapshot.terminal:
        controls.append("resume")
    controls.append("cancel" if not snapshot.terminal else "replay")
    return controls


def timeline(snapshot: RunSnapshot) -> list[dict[str, Any]]:
    """The run's attempts and receipts as one list of moments, oldest first."""
    rows: list[dict[str, Any]] = [
        {"at": snapshot.started_at, "kind": "run", "what": "started", "step": None, "detail": ""}
    ]
    for record in snapshot.attempt_history:
        attempt = f"{record.step} #{record.attempt_number}"
        rows.append(
            {
                "at": record.visible_at,
                "kind": "attempt",
                "what": "visible" if record.attempt_number == 1 else "retry visible",
                "step": attempt,
                "detail": "",
            }
        )
        claim = record.claim
        if claim is not None and claim.claimed_at is not None:
            # Owners and leases are claim data: only an auditor's scope keeps them.
            owner = f"by {claim.owner_id}" if claim.owner_id != REDACTED else "owner hidden"
            lease = f", lease until {_iso(claim.lease_until)}" if claim.lease_until else ""
            rows.append(
                {
                    "at": claim.claimed_at,
                    "kind": "claim",
                    "what": "claimed",
                    "step": attempt,
                    "detail": owner + lease,
                }
            )
        if claim is not None and claim.finished_at is not None:
            rows.append(
                {
                    "at": claim.finished_at,
                    "kind": "outcome",
                    "what": claim.outcome or "finished",
                    "step": attempt,
                    "detail": "",
                }
            )
        if record.applied_at is not None:
            rows.append(
                {
                    "at": record.applied_at,
                    "kind": "applied",
                    "what": f"applied: {record.outcome or record.status}",
                    "step": attempt,
                    "detail": "",
                }
            )
    for receipt in snapshot.command_history:
        if receipt.occurred_at is None:
            continue
        who = f"by {receipt.actor}" if receipt.actor else ""
        comment = f": {receipt.comment}" if receipt.comment else ""
        rows.append(
            {
                "at": receipt.occurred_at,
                "kind": "command",
                "what": receipt.signal_type,
                "step": None,
                "detail": who + comment,
            }
        )
    if snapshot.ended_at is not None:
        rows.append(
            {
                "at": snapshot.ended_at,
                "kind": "run",
                "what": f"ended {snapshot.terminal_status or snapshot.status.value}",
                "step": None,
                "detail": "",
            }
        )
    return sorted(rows, key=lambda row: row["at"])


def queues_page(request: Request) -> Response:
    """Per queue: depth, visible now, scheduled, in flight, expired leases, oldest wait."""
    dashboard = dashboard_of(request)
    with dashboard.journal() as mesh:
        now = mesh.now()
        stats = [
            queue_stats([mesh.get_queue(p, now=now) for p in mesh.queue_partitions_of(name)], now)
            for name in dashboard.queues
        ]
    return render(request, "queues.html", {"page": "queues", "queues": stats, "now": now})


def schedules_page(request: Request) -> Response:
    """Every cron trigger of the registered workflows, its next ticks and its latest run."""
    dashboard = dashboard_of(request)
    rows: list[dict[str, Any]] = []
    with dashboard.catalog() as catalog:
        mesh = dashboard.mesh
        now = mesh.now()
        for name in mesh.workflows.names():
            workflow = mesh.workflows.get(name)
            if workflow is None:
                continue
            for trigger in workflow.to_spec().triggers:
                if trigger.type is not TriggerType.CRON:
                    continue
                zone = trigger.timezone or "Etc/UTC"
                ticks, problem = _next_ticks(trigger.expression or "", zone, now)
                latest = catalog.list_runs(workflow=name, trigger=trigger.name, limit=1, now=now)
                rows.append(
                    {
                        "workflow": name,
                        "trigger": trigger.name,
                        "expression": trigger.expression,
                        "timezone": zone,
                        "next": ticks,
                        "problem": problem,
                        "latest": latest[0] if latest else None,
                    }
                )
    return render(request, "schedules.html", {"page": "schedules", "rows": rows, "now": now})


def _next_ticks(expression: str, zone: str, now: datetime) -> tuple[list[datetime], str | None]:
    """The next few ticks after ``now``, looking further ahead until there are enough."""
    found: list[datetime] = []
    try:
        for horizon in _HORIZONS:
            found = [t for t, _ in cron_ticks(expression, zone, after=now, until=now + horizon)]
            if len(found) >= NEXT_FIRE_TIMES:
                break
    except InvalidArgument as exc:
        return [], exc.reason
    return found[:NEXT_FIRE_TIMES], None


def _index(text: str) -> dict[str, str]:
    """``key=value, key2=value2`` as the index filter."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument("index", f"wants key=value, got {item!r}")
        keys[key.strip()] = value.strip()
    return keys


def _moment(name: str, text: str) -> datetime | None:
    """A time from the form's ``datetime-local`` field, read as UTC when it names no zone."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(name, "is not a date and time (YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        raise InvalidArgument("limit", f"must be an integer from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"
