"""``squidmesh approve | reject | resume | cancel | forget | replay | recover``: controls.

Each command is one call of the public API (`SquidMesh.approve` and friends) on the journal,
so a control from the shell is the same command, with the same receipt, duplicate rule and
refusals, as one from Python. A refusal writes nothing and exits 1.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import NoReturn, TypeVar

import click

from squidmesh_es.cli._console import spinner
from squidmesh_es.cli._options import (
    database_url_option,
    fail,
    import_option,
    json_option,
    load_workflows,
    open_journal,
    scope_option,
)
from squidmesh_es.errors import InvalidArgument, InvalidReplaySource, SquidMeshError
from squidmesh_es.read_model import RunSnapshot, redact
from squidmesh_es.runtime import RecoveryReport, SquidMesh
from squidmesh_es.workflow import JSONValue

__all__ = [
    "approve_command",
    "cancel_command",
    "forget_command",
    "recover_command",
    "reject_command",
    "replay_command",
    "resume_command",
]

_IMPORT_HELP = (
    "Module whose Workflow classes are registered: the control plans the step that follows, "
    "which needs the workflow's code. Repeat for several."
)
_IMPORT_HINT = "pass --import with the module that defines the run's workflow"

F = TypeVar("F", bound=Callable[..., object])


def _journal_options(f: F) -> F:
    return database_url_option("Journal to write to (also SQUIDMESH_DATABASE_URL).")(f)


def _receipt_options(*, reason: bool = False) -> Callable[[F], F]:
    """``--actor``, ``--comment`` (``--reason`` for cancel), ``--metadata``, ``--idempotency-key``.

    They become the command's receipt in the run's history, as the Python call's keywords do.
    """
    why = (
        click.option("--reason", default=None, help="Why; the run's error and the receipt's.")
        if reason
        else click.option("--comment", default=None, help="Why; kept on the receipt.")
    )
    options = [
        click.option("--actor", default=None, help="Who decides; kept on the receipt."),
        why,
        click.option(
            "--metadata",
            "metadata",
            multiple=True,
            metavar="KEY=VALUE",
            help="Kept on the receipt (values are strings; secrets are redacted); repeat.",
        ),
        click.option(
            "--idempotency-key",
            default=None,
            help="Key of this command: a repeat with the same key writes nothing and "
            "prints the same result.",
        ),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _manual_command(
    name: str, method: Callable[..., RunSnapshot], signal_type: str, doc: str
) -> click.Command:
    """One of ``approve``, ``reject`` and ``resume``: they differ only in what they call."""

    def command(
        run_id: str,
        database_url: str,
        modules: tuple[str, ...],
        actor: str | None,
        comment: str | None,
        metadata: tuple[str, ...],
        idempotency_key: str | None,
        scope: str,
        as_json: bool,
    ) -> None:
        _decide(
            method,
            signal_type,
            run_id,
            database_url=database_url,
            modules=modules,
            actor=actor,
            comment=comment,
            metadata=metadata,
            idempotency_key=idempotency_key,
            scope=scope,
            as_json=as_json,
        )

    command.__doc__ = doc
    # Applied innermost first, so --help lists the options as the other commands do.
    decorated = _receipt_options()(scope_option(json_option(command)))
    decorated = _journal_options(import_option(help=_IMPORT_HELP)(decorated))
    return click.command(name)(click.argument("run_id")(decorated))


approve_command = _manual_command(
    "approve",
    SquidMesh.approve,
    "approve_run",
    "Approve the approval step RUN_ID is paused at; the run takes the step's ok route.",
)
reject_command = _manual_command(
    "reject",
    SquidMesh.reject,
    "reject_run",
    "Reject the approval step RUN_ID is paused at; the run takes the step's error route.",
)
resume_command = _manual_command(
    "resume",
    SquidMesh.resume,
    "resume_run",
    "Resume the pause step RUN_ID is paused at; the run takes the step's ok route.",
)


@click.command("cancel")
@click.argument("run_id")
@_journal_options
@_receipt_options(reason=True)
@scope_option
@json_option
def cancel_command(
    run_id: str,
    database_url: str,
    actor: str | None,
    reason: str | None,
    metadata: tuple[str, ...],
    idempotency_key: str | None,
    scope: str,
    as_json: bool,
) -> None:
    """End RUN_ID as cancelled, whatever it is doing; its queued attempts are fenced.

    Needs no --import: cancelling plans nothing.
    """
    fields = _metadata(metadata)
    try:
        with open_journal(database_url) as mesh:
            snapshot = mesh.cancel(
                run_id,
                actor=actor,
                reason=reason,
                metadata=fields,
                idempotency_key=idempotency_key,
            )
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    _print_control(snapshot, "cancel_run", idempotency_key, scope=scope, as_json=as_json)


@click.command("forget")
@click.argument("run_id")
@_journal_options
@click.option("--actor", default=None, help="Who asked; kept on the RunDataForgotten fact.")
@scope_option
@json_option
def forget_command(
    run_id: str, database_url: str, actor: str | None, scope: str, as_json: bool
) -> None:
    """Erase RUN_ID's personal data for good: destroy its data key (crypto-shredding).

    Only runs of ``erasable`` workflows can be forgotten; one still under way is cancelled
    first. Its history stays, with payload, step inputs and outputs, decisions and dynamic
    work shown as [ERASED]. Needs no --import.
    """
    try:
        with open_journal(database_url) as mesh:
            snapshot = mesh.forget_run(run_id, actor=actor)
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps(redact(snapshot, scope).model_dump(mode="json"), indent=2))
    else:
        click.echo(f"{control_line(snapshot, 'cancel_run', None)}; data forgotten")


@click.command("replay")
@click.argument("run_id")
@_journal_options
@import_option(help=_IMPORT_HELP)
@_receipt_options()
@click.option(
    "--allow-irreversible",
    is_flag=True,
    help="Replay even though completed steps are irreversible or not compensatable.",
)
@scope_option
@json_option
def replay_command(
    run_id: str,
    database_url: str,
    modules: tuple[str, ...],
    actor: str | None,
    comment: str | None,
    metadata: tuple[str, ...],
    idempotency_key: str | None,
    allow_irreversible: bool,
    scope: str,
    as_json: bool,
) -> None:
    """Start a fresh run from RUN_ID's trigger and input, and print the new run.

    The key defaults to replay_run:RUN_ID, so replaying the same source again prints the
    same new run; pass another --idempotency-key to replay it once more.
    """
    fields = _metadata(metadata)
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows) as mesh:
            snapshot = mesh.replay(
                run_id,
                allow_irreversible=allow_irreversible,
                actor=actor,
                comment=comment,
                metadata=fields,
                idempotency_key=idempotency_key,
            )
    except SquidMeshError as error:
        _refuse(error, as_json=as_json)
    # A replay's new run holds one replay receipt, whatever its key.
    _print_control(snapshot, "replay_run", None, scope=scope, as_json=as_json)


@click.command("recover")
@_journal_options
@import_option(
    help="Module whose Workflow classes are registered; runs of other workflows are skipped, "
    "not judged. Repeat for several."
)
@click.option("--queue", default=None, help="Queue whose runs are repaired (default: default).")
@click.option("--run", "run_id", default=None, help="Repair only this run (on its own queue).")
@json_option
def recover_command(
    database_url: str,
    modules: tuple[str, ...],
    queue: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """Repair half-done histories: schedule planned work, apply finished results, close runs.

    Idempotent: a second pass finds nothing to repair. Safe while workers run.
    """
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows) as mesh, spinner("recovering"):
            report = mesh.recover(queue=queue, run_id=run_id)
            queue_name = queue or mesh.default_queue
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        document = {**dataclasses.asdict(report), "repaired": report.repaired}
        click.echo(json.dumps(document, indent=2))
        return
    for line in render_report(report, queue=queue_name if run_id is None else None, run=run_id):
        click.echo(line)
    if report.skipped_runs:
        click.echo(f"note: skipped runs are not judged; {_IMPORT_HINT}", err=True)


def render_report(report: RecoveryReport, *, queue: str | None, run: str | None) -> list[str]:
    """The human view of a recovery pass: its counts, then each key or run id it names."""
    where = f"run {run}" if run is not None else f"queue {queue}"
    lines = [
        f"recover {where}: scheduled {len(report.scheduled)}, applied {len(report.applied)}, "
        f"closed {len(report.closed_runs)}, skipped {len(report.skipped_runs)}"
    ]
    for label, values in (
        ("scheduled", report.scheduled),
        ("applied", report.applied),
        ("closed", report.closed_runs),
        ("skipped", report.skipped_runs),
    ):
        lines.extend(f"  {label:<9}  {value}" for value in values)
    return lines


def control_line(snapshot: RunSnapshot, signal_type: str, idempotency_key: str | None) -> str:
    """``run <id>: <status> after <signal type> by <actor>``: what a control left behind.

    The receipt is the one this command wrote, or found when it was a duplicate delivery
    (same type and key), so a repeat prints the line the first delivery printed.
    """
    status = snapshot.status.value
    if snapshot.terminal_status and snapshot.terminal_status != status:
        status += f" ({snapshot.terminal_status})"
    line = f"run {snapshot.run_id}: {status}"
    receipts = [
        c
        for c in snapshot.command_history
        if c.signal_type == signal_type
        and (idempotency_key is None or c.idempotency_key == idempotency_key)
    ]
    if receipts:
        receipt = receipts[-1]
        line += f" after {receipt.signal_type}"
        if receipt.actor:
            line += f" by {receipt.actor}"
    if snapshot.replayed_from_run_id:
        line += f" (replay of {snapshot.replayed_from_run_id})"
    return line


def _decide(
    control: Callable[..., RunSnapshot],
    signal_type: str,
    run_id: str,
    *,
    database_url: str,
    modules: Iterable[str],
    actor: str | None,
    comment: str | None,
    metadata: tuple[str, ...],
    idempotency_key: str | None,
    scope: str,
    as_json: bool,
) -> None:
    """Approve, reject or resume: ``control`` is the `SquidMesh` method, unbound.

    ``signal_type`` is the receipt it writes, which the printed line names.
    """
    fields = _metadata(metadata)
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows) as mesh:
            snapshot = control(
                mesh,
                run_id,
                actor=actor,
                comment=comment,
                metadata=fields,
                idempotency_key=idempotency_key,
            )
    except SquidMeshError as error:
        _refuse(error, as_json=as_json)
    _print_control(snapshot, signal_type, idempotency_key, scope=scope, as_json=as_json)


def _print_control(
    snapshot: RunSnapshot,
    signal_type: str,
    idempotency_key: str | None,
    *,
    scope: str,
    as_json: bool,
) -> None:
    if as_json:
        click.echo(json.dumps(redact(snapshot, scope).model_dump(mode="json"), indent=2))
        return
    # The line shows only what the caller just supplied (signal type, actor) besides the
    # run's id and status, so it is the same in every scope.
    click.echo(control_line(snapshot, signal_type, idempotency_key))


def _refuse(error: SquidMeshError, *, as_json: bool) -> NoReturn:
    """`fail`, with a hint when the refusal is only for want of the workflow's code."""
    missing_code = (isinstance(error, InvalidArgument) and error.option == "workflow") or (
        isinstance(error, InvalidReplaySource) and error.reason == "workflow"
    )
    fail(error, as_json=as_json, hint=_IMPORT_HINT if missing_code else None)


def _metadata(items: tuple[str, ...]) -> dict[str, JSONValue]:
    """``--metadata KEY=VALUE`` options as a mapping.

    Raises:
        click.BadParameter: an item without ``=`` or key, or a key given twice (exit 2).
    """
    fields: dict[str, JSONValue] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"wants KEY=VALUE, got {item!r}", param_hint="--metadata")
        if key in fields:
            raise click.BadParameter(f"{key!r} is given twice", param_hint="--metadata")
        fields[key] = value
    return fields
