"""``squidmesh workers list | release OWNER``: live workers, and freeing a dead one's work.

``list`` reads the journal's worker registry; ``release`` ends every lease a worker holds, so
its steps are redelivered at once instead of when their leases run out.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import click

from squidmesh_es.cli._console import print_table
from squidmesh_es.cli._options import database_url_option, fail, json_option, open_journal
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.runtime import WorkerInfo

__all__ = ["workers"]


@click.group()
def workers() -> None:
    """Worker processes: list them, release a dead one's claims."""


@workers.command("list")
@database_url_option()
@click.option(
    "--all", "include_gone", is_flag=True, help="Also workers that stopped or were released."
)
@json_option
def list_command(database_url: str, include_gone: bool, as_json: bool) -> None:
    """Workers that run (live), or ran and went silent (likely dead), newest first."""
    try:
        with open_journal(database_url, create=False) as mesh:
            found = mesh.list_workers(include_gone=include_gone)
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps([_document(w) for w in found], indent=2))
        return
    if not found:
        click.echo("no workers")
        return
    print_table(
        ("OWNER", "STATUS", "CLAIMS", "SEEN", "QUEUES"),
        (
            (w.owner_id, w.status, str(w.claims), _time(w.seen_at), ",".join(w.queues))
            for w in found
        ),
        right=(2,),
        status_column=1,
    )


@workers.command("release")
@database_url_option("Journal to write to (also SQUIDMESH_DATABASE_URL).")
@click.argument("owner_id")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Queue to release on (default: the queues the worker registered); repeat.",
)
@click.option("--actor", default=None, help="Who releases; kept in the registry.")
@json_option
def release_command(
    database_url: str, owner_id: str, queues: tuple[str, ...], actor: str | None, as_json: bool
) -> None:
    """End every lease OWNER_ID holds now: its steps are redelivered at once.

    For a worker whose process is gone. If it still runs, its results are refused and its
    steps run again elsewhere.
    """
    try:
        with open_journal(database_url, create=False) as mesh:
            report = mesh.release_worker(owner_id, queues=list(queues) or None, actor=actor)
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps({"owner_id": owner_id, "released": report.released}, indent=2))
        return
    click.echo(f"released {report.count} claims of {owner_id}")
    for queue, keys in report.released.items():
        click.echo(f"  {queue}: {len(keys)}")


def _document(info: WorkerInfo) -> dict[str, object]:
    document = dataclasses.asdict(info)
    for key, value in document.items():
        if isinstance(value, datetime):
            document[key] = value.isoformat()
    return document


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")
