"""``squidmesh inspect`` and ``squidmesh explain``: one run, read from its journal."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import click

from squidmesh_es.cli._options import (
    database_url_option,
    fail,
    import_option,
    json_option,
    load_workflows,
    open_journal,
    scope_option,
)
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.read_model import (
    DeadlineView,
    Explanation,
    RunSnapshot,
    explain_run_snapshot,
    redact,
)

__all__ = ["explain_command", "inspect_command"]

_WIDTH = 100
"""Values longer than this are cut in the human views; --json has them whole."""


@click.command("inspect")
@click.argument("run_id")
@database_url_option()
@import_option()
@click.option("--history", is_flag=True, help="Include applied results and command payloads.")
@scope_option
@json_option
def inspect_command(
    run_id: str,
    database_url: str,
    modules: tuple[str, ...],
    history: bool,
    scope: str,
    as_json: bool,
) -> None:
    """Show RUN_ID as its journal says now: status, reason, steps, attempts, context keys.

    Output is redacted to --scope (operator by default: no inputs, outputs, errors or
    context values). --json prints the snapshot document.
    """
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows, create=False) as mesh:
            snapshot = mesh.inspect_run(run_id, include_history=history)
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    explanation = explain_run_snapshot(snapshot, now=snapshot.as_of)
    shown = redact(snapshot, scope)
    if as_json:
        click.echo(json.dumps(shown.model_dump(mode="json"), indent=2))
        return
    for line in render_snapshot(shown, redact(explanation, scope), scope=scope):
        click.echo(line)


@click.command("explain")
@click.argument("run_id")
@database_url_option()
@import_option()
@scope_option
@json_option
def explain_command(
    run_id: str, database_url: str, modules: tuple[str, ...], scope: str, as_json: bool
) -> None:
    """Explain why RUN_ID is where it is, what to do next, and the evidence.

    Output is redacted to --scope (operator by default). --json prints the explanation.
    """
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows, create=False) as mesh:
            explanation = redact(mesh.explain_run(run_id), scope)
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps(explanation.model_dump(mode="json"), indent=2))
        return
    for line in render_explanation(explanation):
        click.echo(line)


def render_snapshot(snapshot: RunSnapshot, explanation: Explanation, *, scope: str) -> list[str]:
    """The human view of a (redacted) snapshot, with the explanation's summary and actions."""
    s = snapshot
    status = s.status.value
    if s.terminal_status and s.terminal_status != status:
        status += f" ({s.terminal_status})"
    lines = [
        _row("run", s.run_id),
        _row("workflow", _join([s.workflow, _kv("trigger", s.trigger), _kv("queue", s.queue)])),
        _row("status", f"{status}, reason {s.reason.value}"),
        _row("summary", explanation.summary),
        _row("next", ", ".join(a.value for a in explanation.next_actions) or "-"),
        _row(
            "times",
            _join(
                [
                    _kv("started", s.started_at.isoformat()),
                    _kv("updated", s.updated_at.isoformat()),
                    _kv("ended", s.ended_at.isoformat() if s.ended_at else None),
                ]
            ),
        ),
    ]
    matches = {True: "matches code", False: "CODE CHANGED", None: None}[s.definition_matches]
    if s.definition_source == "runtime_spec":
        matches = "runtime spec stored with the run"  # no deployed code to compare with
    definition = _join(
        [
            _kv("version", s.definition_version),
            _kv("fingerprint", s.definition_fingerprint[:12] if s.definition_fingerprint else None),
            matches,
        ]
    )
    if definition:
        lines.append(_row("definition", definition))
    lines.append(_row("input keys", _keys(s.input, scope)))
    lines.append(_row("context keys", _keys(s.context, scope)))
    counts = explanation.evidence.get("attempt_counts")
    if isinstance(counts, dict) and counts:
        lines.append(_row("attempts", _join(f"{k} {v}" for k, v in sorted(counts.items()))))
    if s.next_visible_at:
        lines.append(_row("next visible", s.next_visible_at.isoformat()))
    if s.manual_state:
        manual = s.manual_state
        lines.append(_row("manual", _cut(json.dumps(manual.model_dump(mode="json")))))
    if s.deadline:
        lines.append(_row("deadline", _deadline(s.deadline)))
    if s.parent_run:
        lines.append(_row("parent", _cut(json.dumps(s.parent_run))))
    for child in s.child_runs:
        lines.append(_row("child", _cut(json.dumps(child))))
    if s.replayed_from_run_id:
        lines.append(_row("replay of", s.replayed_from_run_id))
    if s.error:
        lines.append(_row("error", _cut(json.dumps(s.error))))
    if s.anomaly_count:
        lines.append(_row("anomalies", str(s.anomaly_count)))
    lines.append("steps:")
    applied = {a.runnable_key: a for a in s.applied_runnables}
    live = {a.runnable_key: a for a in s.attempts}
    undispatched = {r.runnable_key for r in s.pending_dispatches}
    width = max((len(f"{r.step} #{r.attempt_number}") for r in s.planned_runnables), default=0)
    for planned in s.planned_runnables:
        done = applied.get(planned.runnable_key)
        attempt = live.get(planned.runnable_key)
        if done is not None:
            route = done.transition.get("to") if done.transition else None
            state = done.outcome + (f" -> {route}" if route else "")
        elif attempt is not None:
            state = f"{attempt.status}, visible {attempt.visible_at.isoformat()}"
            if attempt.lease_until:
                state += f", lease until {attempt.lease_until.isoformat()}"
        elif s.manual_state is not None and planned.step == s.manual_state.step:
            # A manual boundary has no attempt: it waits for an operator, not a worker.
            decision = "approve or reject" if s.manual_state.kind == "approval" else "resume"
            state = f"paused, waiting for {decision}"
        elif planned.runnable_key in undispatched:
            state = "planned, not dispatched yet"
        else:
            # The attempt is in the queue, but this scope does not show attempts.
            state = f"open, visible {planned.visible_at.isoformat()}"
        name = f"{planned.step} #{planned.attempt_number}"
        lines.append(f"  {name:<{width}}  {state}")
    if not s.planned_runnables:
        lines.append("  (none planned)")
    return lines


def render_explanation(explanation: Explanation) -> list[str]:
    """The human view of a (redacted) explanation: diagnosis first, then facts and evidence."""
    e = explanation
    reason = e.reason.value + (f" (step {e.step})" if e.step else "")
    lines = [
        _row("run", e.run_id),
        _row(
            "workflow",
            _join([e.workflow, _kv("queue", e.queue), _kv("version", e.definition_version)]),
        ),
        _row("status", e.status.value),
        _row("reason", reason),
        _row("summary", e.summary),
        _row("next", ", ".join(a.value for a in e.next_actions) or "-"),
    ]
    for title, data in (("details", e.details), ("evidence", e.evidence)):
        shown = {k: v for k, v in data.items() if v not in (None, [], {}, "")}
        if not shown:
            continue
        lines.append(f"{title}:")
        lines.extend(f"  {k}: {_cut(json.dumps(v))}" for k, v in shown.items())
    return lines


def _row(label: str, value: str) -> str:
    return f"{label + ':':<14}{value}"


def _kv(key: str, value: str | None) -> str | None:
    return f"{key} {value}" if value else None


def _join(parts: Iterable[str | None]) -> str:
    return ", ".join(p for p in parts if p)


def _keys(data: Mapping[str, object], scope: str) -> str:
    if data:
        return ", ".join(sorted(data))
    return "-" if scope == "auditor" else f"- (values are hidden from {scope} scope)"


def _cut(text: str) -> str:
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def _deadline(deadline: DeadlineView) -> str:
    """Status first, so the line says what matters even in a narrow terminal."""
    escalation = f", escalation {deadline.escalation}" if deadline.escalation else ""
    return (
        f"{deadline.status.value} ({deadline.step}): due {deadline.due_at.isoformat()}{escalation}"
    )
