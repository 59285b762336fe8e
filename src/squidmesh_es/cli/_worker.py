"""``squidmesh worker``: run a worker process until SIGTERM or Ctrl-C, then stop gracefully."""

from __future__ import annotations

import signal
from datetime import timedelta
from types import FrameType

import click

from squidmesh_es.cli._group import configure_logging
from squidmesh_es.cli._options import load_worker_code, open_journal
from squidmesh_es.runtime import DEFAULT_DATABASE_URL

__all__ = ["worker"]


@click.command()
@click.option(
    "--database-url",
    envvar="SQUIDMESH_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="Journal to work on (also SQUIDMESH_DATABASE_URL).",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    required=True,
    help="Module whose Workflow classes (and ActionRegistry, if it defines one) this worker "
    "runs; repeat for several.",
)
@click.option(
    "--actions",
    default=None,
    metavar="MODULE:NAME",
    help="The ActionRegistry for runtime-spec runs and dynamic nodes, when the imported "
    "modules define none or several.",
)
@click.option("--queue", "queues", multiple=True, help="Queue to pull from; repeat for several.")
@click.option("--concurrency", default=1, show_default=True, help="Steps run at once.")
@click.option("--owner-id", default=None, help="Worker id recorded on claims.")
@click.option("--lease-seconds", default=300.0, show_default=True, help="Lease per claim.")
@click.option("--heartbeat-seconds", default=None, type=float, help="Extend leases this often.")
def worker(
    database_url: str,
    modules: tuple[str, ...],
    actions: str | None,
    queues: tuple[str, ...],
    concurrency: int,
    owner_id: str | None,
    lease_seconds: float,
    heartbeat_seconds: float | None,
) -> None:
    """Execute visible attempts of the imported workflows until stopped.

    SIGTERM or Ctrl-C stops claiming; the steps in hand finish and are committed first.
    """
    configure_logging()
    workflows, registry = load_worker_code(modules, actions)
    with open_journal(database_url, workflows=workflows, action_registry=registry) as mesh:
        running = mesh.worker(
            queues=list(queues) or None,
            concurrency=concurrency,
            owner_id=owner_id,
            lease_for=timedelta(seconds=lease_seconds),
            heartbeat_interval=(
                timedelta(seconds=heartbeat_seconds) if heartbeat_seconds is not None else None
            ),
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            click.echo(f"stopping worker {running.owner_id} (signal {signum})", err=True)
            running.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        names = ", ".join(sorted(w.name for w in workflows)) or "no workflow classes"
        if registry is not None:
            names += f" and {len(registry)} actions"
        click.echo(
            f"worker {running.owner_id} runs {names} on {', '.join(running.queues)}", err=True
        )
        running.run_forever()
        click.echo(
            f"worker {running.owner_id} stopped after {running.stats.executed} steps", err=True
        )
