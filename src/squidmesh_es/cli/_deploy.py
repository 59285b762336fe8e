"""``squidmesh deploy check`` and ``squidmesh runs migrate``: runs in flight across deploys."""

from __future__ import annotations

import json

import click

from squidmesh_es.cli._options import (
    database_url_option,
    fail,
    import_option,
    json_option,
    load_workflows,
    open_journal,
)
from squidmesh_es.errors import SquidMeshError, UnsafeMigration
from squidmesh_es.runtime import runs_in_flight
from squidmesh_es.workflow import JSONValue

__all__ = ["deploy", "runs"]


@click.group()
def deploy() -> None:
    """Check code about to be deployed against the runs in flight."""


@deploy.command("check")
@database_url_option()
@import_option(required=True, help="Module of the code about to be deployed; repeatable.")
@json_option
def check_command(database_url: str, modules: tuple[str, ...], as_json: bool) -> None:
    """List runs in flight that the imported code cannot serve; exit 1 when there is one.

    Each run of an imported workflow is checked against the graph it started with: a step
    of it, not completed yet, that the code lacks would leave the run waiting. Runs of
    workflows the modules do not define are not checked.
    """
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows, create=False) as mesh:
            problems = mesh.check_deploy()
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps({"problems": [p.to_dict() for p in problems]}, indent=2))
    elif not problems:
        names = ", ".join(sorted({w.name for w in workflows}))
        click.echo(f"ok: this code serves every run in flight of {names}")
    else:
        click.echo(f"{'RUN':<36}  {'WORKFLOW':<16} {'REASON':<32} MISSING (WAITING NOW)")
        for p in problems:
            waiting = f" ({', '.join(p.waiting_steps)})" if p.waiting_steps else ""
            click.echo(
                f"{p.run_id:<36}  {p.workflow[:16]:<16} {p.reason:<32} "
                f"{', '.join(p.missing_steps) or '-'}{waiting}"
            )
    if problems:
        raise SystemExit(1)


@click.group()
def runs() -> None:
    """Operate on many runs at once."""


@runs.command("migrate")
@database_url_option()
@import_option(required=True, help="Module defining the workflow's current code; repeatable.")
@click.option("--workflow", required=True, help="Migrate the runs in flight of this workflow.")
@click.option("--dry-run", is_flag=True, help="Say what would move; write nothing.")
@click.option("--actor", default=None, help="Who migrates, for the journal.")
@click.option("--reason", default=None, help="Why, for the journal.")
@json_option
def migrate_command(
    database_url: str,
    modules: tuple[str, ...],
    workflow: str,
    dry_run: bool,
    actor: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Move the runs in flight of --workflow onto its imported definition, where safe.

    Each run moves alone: a run the move would strand is refused with the conflicting
    steps and keeps its own graph; the others move. Exit 1 when any run was refused.
    """
    workflows = load_workflows(modules)
    if workflow not in {w.name for w in workflows}:
        raise click.BadParameter(
            f"the imported modules define no {workflow!r}", param_hint="--workflow"
        )
    rows: list[tuple[str, str, list[dict[str, str]]]] = []
    try:
        with open_journal(database_url, workflows=workflows, create=False) as mesh:
            for run in list(runs_in_flight(mesh, workflow)):
                try:
                    moved = mesh.migrate_run(
                        run.run_id, actor=actor, reason=reason, dry_run=dry_run
                    )
                except UnsafeMigration as refused:
                    rows.append((str(run.run_id), "refused", refused.conflicts))
                    continue
                rows.append((moved.run_id, moved.status, []))
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        documents: list[JSONValue] = [
            {"run_id": run_id, "status": status, "conflicts": [dict(c) for c in conflicts]}
            for run_id, status, conflicts in rows
        ]
        click.echo(json.dumps({"runs": documents}, indent=2))
    else:
        for run_id, status, conflicts in rows:
            detail = ", ".join(f"{c['step']}: {c['reason']}" for c in conflicts)
            click.echo(f"{run_id}  {status}" + (f"  {detail}" if detail else ""))
        click.echo(f"{len(rows)} runs in flight of {workflow}")
    if any(status == "refused" for _, status, _ in rows):
        raise SystemExit(1)
