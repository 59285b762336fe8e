"""``squidmesh list``: runs from the catalog projection, newest first, a page at a time."""

from __future__ import annotations

import json

import click

from squidmesh_es.cli._console import print_table
from squidmesh_es.cli._options import open_journal
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.projections import MAX_LIMIT, Projections
from squidmesh_es.runtime import DEFAULT_DATABASE_URL

__all__ = ["list_command"]


@click.command("list")
@click.option(
    "--database-url",
    envvar="SQUIDMESH_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="Journal to list (also SQUIDMESH_DATABASE_URL).",
)
@click.option("--workflow", default=None, help="Only runs of this workflow.")
@click.option("--status", default=None, help="Only runs in this status.")
@click.option("--queue", default=None, help="Only runs on this queue.")
@click.option("--trigger", default=None, help="Only runs started by this trigger.")
@click.option("--parent", "parent_run_id", default=None, help="Only children of this run.")
@click.option(
    "--idempotency-key",
    default=None,
    help="Only the run started with this idempotency key (of its start command).",
)
@click.option(
    "--schedule-key",
    default=None,
    help="Only the cron run deduplicated by this key (the delivery's key, else its signal id).",
)
@click.option(
    "--schedule-signal-id",
    default=None,
    help="Only runs of the cron activation with this signal id, replays included.",
)
@click.option(
    "--index",
    "index",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only runs whose declared index key has this value; repeat to combine.",
)
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="Page size."
)
@click.option("--after", default=None, help="Cursor printed by the previous page.")
@click.option("--no-catch-up", is_flag=True, help="List without applying new events first.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(
    database_url: str,
    workflow: str | None,
    status: str | None,
    queue: str | None,
    trigger: str | None,
    parent_run_id: str | None,
    idempotency_key: str | None,
    schedule_key: str | None,
    schedule_signal_id: str | None,
    index: tuple[str, ...],
    limit: int,
    after: str | None,
    no_catch_up: bool,
    as_json: bool,
) -> None:
    """List runs newest first; no inputs, outputs, errors, claims or keys are shown.

    The catalog is caught up first unless --no-catch-up, so a journal without a follower
    process still lists every run.
    """
    keys: dict[str, str] = {}
    for item in index:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--index wants KEY=VALUE, got {item!r}")
        keys[key] = value
    with open_journal(database_url, create=False) as mesh, Projections(mesh) as followers:
        if not no_catch_up:
            followers.catch_up("run_catalog")
            followers.catch_up("run_index")
        try:
            runs = followers.list_runs(
                workflow=workflow,
                status=status,
                queue=queue,
                trigger=trigger,
                parent_run_id=parent_run_id,
                idempotency_key=idempotency_key,
                schedule_key=schedule_key,
                schedule_signal_id=schedule_signal_id,
                index=keys,
                limit=limit,
                after=after,
                now=mesh.now(),  # deadline statuses as of now, not as of the last event
            )
        except SquidMeshError as error:
            if as_json:
                click.echo(json.dumps({"error": {"code": error.code, "message": str(error)}}))
                raise SystemExit(1) from error
            raise click.ClickException(f"{error.code}: {error}") from error
    if as_json:
        page = {"runs": [r.model_dump(mode="json") for r in runs], "next_cursor": runs.next_cursor}
        click.echo(json.dumps(page, indent=2))
        return
    print_table(
        ("RUN", "WORKFLOW", "QUEUE", "STATUS", "STARTED"),
        ((r.run_id, r.workflow, r.queue, r.status.value, r.indexed_at.isoformat()) for r in runs),
        status_column=3,
    )
    if runs.next_cursor:
        click.echo(f"more: --after {runs.next_cursor}")
