"""``squidmesh worker``: run a worker process until SIGTERM or Ctrl-C, then stop gracefully.

Under a supervisor it can answer probes (``--health-port``, ``--health-file``) and serve
Prometheus metrics (``--metrics-port``); see docs/running.md and docs/observability.md.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click

from squidmesh_es.cli._logging import configure_logging, logging_options
from squidmesh_es.cli._options import load_worker_code, open_journal
from squidmesh_es.domain import check_queue_name
from squidmesh_es.errors import InvalidArgument, StorageUnavailable
from squidmesh_es.runtime import (
    DEFAULT_BATCH_WINDOW,
    DEFAULT_DATABASE_URL,
    SquidMesh,
    parse_database_url,
)
from squidmesh_es.runtime._probes import serve_probes
from squidmesh_es.runtime._telemetry import prometheus_metrics
from squidmesh_es.workflow import ActionRegistry, Workflow

__all__ = ["worker"]

logger = logging.getLogger("squidmesh_es.cli.worker")

RECONNECT_BACKOFF = (0.5, 30.0)
"""Seconds between attempts to reach the database at start: doubling, up to the maximum."""

DEFAULT_GRACE_SECONDS = 25.0
"""How long the steps in hand may take to finish after SIGTERM: under Kubernetes' default
``terminationGracePeriodSeconds`` of 30, leaving time to release what is left and exit."""

_OPTION_NAMES = {
    "queue": "--queue",
    "queues": "--queue",
    "concurrency": "--concurrency",
    "lease_for": "--lease-seconds",
    "heartbeat_interval": "--heartbeat-seconds",
    "owner_id": "--owner-id",
    "batch_window": "--batch-window-ms",
}


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
@click.option("--lease-seconds", default=30.0, show_default=True, help="Lease per claim.")
@click.option(
    "--heartbeat-seconds",
    default=None,
    type=float,
    help="Extend the leases in hand this often (default: a third of the lease).",
)
@click.option(
    "--batch-window-ms",
    default=DEFAULT_BATCH_WINDOW.total_seconds() * 1000,
    show_default=True,
    type=float,
    help="When a step finishes while others still run, wait this long for them so one "
    "commit settles them all (0: commit each outcome at once).",
)
@click.option(
    "--grace-seconds",
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0),
    help="After SIGTERM or Ctrl-C, how long the steps in hand may take to finish; the "
    "claims of steps still running then are released for other workers.",
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Answer /healthz (the worker loop is alive) and /readyz (the database is "
    "reachable) over HTTP on this port.",
)
@click.option(
    "--health-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Touch this file about every second while the worker loop is alive.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the metrics in Prometheus format at /metrics on this port (needs the otel extra).",
)
@click.option(
    "--probe-host",
    default="0.0.0.0",  # noqa: S104 - the supervisor reaches the probes from outside
    show_default=True,
    help="Address the health and metrics ports listen on.",
)
@logging_options
def worker(
    database_url: str,
    modules: tuple[str, ...],
    actions: str | None,
    queues: tuple[str, ...],
    concurrency: int,
    owner_id: str | None,
    lease_seconds: float,
    heartbeat_seconds: float | None,
    batch_window_ms: float,
    grace_seconds: float,
    health_port: int | None,
    health_file: Path | None,
    metrics_port: int | None,
    probe_host: str,
    log_level: str,
    log_format: str,
) -> None:
    """Execute visible attempts of the imported workflows until stopped.

    SIGTERM or Ctrl-C stops claiming; the steps in hand finish and are committed first,
    for at most --grace-seconds; then the claims of steps still running are released, so
    other workers take them over at once, and the process exits. It exits 0 either way.
    Invalid options exit with status 2 before anything is opened. While the database cannot
    be reached, the worker waits and tries again (the wait doubles up to 30 s), logging why.
    """
    configure_logging(log_level, log_format)
    workflows, registry = load_worker_code(modules, actions)
    options: dict[str, object] = {
        "queues": list(queues) or None,
        "concurrency": concurrency,
        "owner_id": owner_id,
        "lease_for": _duration(lease_seconds, "--lease-seconds"),
        "heartbeat_interval": (
            _duration(heartbeat_seconds, "--heartbeat-seconds")
            if heartbeat_seconds is not None
            else None
        ),
        "batch_window": _duration(batch_window_ms / 1000, "--batch-window-ms"),
    }
    _check_options(database_url, queues, options)
    metrics = None
    if metrics_port is not None:
        try:
            metrics = prometheus_metrics()
        except InvalidArgument as exc:
            raise _BadOption(exc.reason, param_hint="--metrics-port") from None
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping worker (signal %d)", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mesh = _open_when_reachable(database_url, workflows, registry, stopping)
    if mesh is None:
        logger.info("worker stopped before the database could be reached")
        return
    with mesh:
        running = mesh.worker(**options)  # type: ignore[arg-type]
        try:
            probes = serve_probes(
                running,
                host=probe_host,
                health_port=health_port,
                metrics_port=metrics_port,
                metrics=metrics,
                health_file=health_file,
            )
        except OSError as exc:  # the port is taken, or the address is not this host's
            raise click.ClickException(f"cannot serve the probes on {probe_host}: {exc}") from None
        names = ", ".join(sorted(w.name for w in workflows)) or "no workflow classes"
        if registry is not None:
            names += f" and {len(registry)} actions"
        running.start()
        click.echo(
            f"worker {running.owner_id} runs {names} on {', '.join(running.queues)}", err=True
        )
        while running.running and not stopping.wait(0.5):
            pass
        settled = running.shutdown(timedelta(seconds=grace_seconds))
        probes.close()
        if not settled:
            # Step threads cannot be interrupted, and the interpreter would wait for them
            # at exit; their claims are released, so the process ends here.
            click.echo(
                f"worker {running.owner_id} stopped after {running.stats.executed} steps; "
                "steps still running were released",
                err=True,
            )
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)
        click.echo(
            f"worker {running.owner_id} stopped after {running.stats.executed} steps", err=True
        )


def _check_options(database_url: str, queues: tuple[str, ...], options: dict[str, object]) -> None:
    """Refuse bad options with a usage error (exit 2), before any database is opened.

    The worker's own rules (lease, heartbeat, concurrency) are checked by building one on
    an in-memory journal, so this command and the library can never disagree.
    """
    try:
        parse_database_url(database_url)
    except InvalidArgument as exc:
        raise _BadOption(exc.reason, param_hint="--database-url") from None
    try:
        for queue in queues:
            check_queue_name(queue)
        with SquidMesh.open("memory://") as probe:
            probe.worker(**options)  # type: ignore[arg-type]
    except InvalidArgument as exc:
        raise _BadOption(exc.reason, param_hint=_OPTION_NAMES.get(exc.option, exc.option)) from None


def _duration(seconds: float, option: str) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise _BadOption("must be a finite number of seconds", param_hint=option) from None


class _BadOption(click.BadParameter):
    """A bad option value: exit status 2 and one line on stderr, without the usage text."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: Invalid value for <option>: <reason>``."""
        click.echo(f"Error: {self.format_message()}", file=file, err=file is None)


def _open_when_reachable(
    database_url: str,
    workflows: list[type[Workflow]],
    registry: ActionRegistry | None,
    stopping: threading.Event,
) -> SquidMesh | None:
    """Open the journal, waiting out a database that is down; ``None`` if stopped first."""
    delay, longest = RECONNECT_BACKOFF
    while not stopping.is_set():
        try:
            return open_journal(database_url, workflows=workflows, action_registry=registry)
        except StorageUnavailable as exc:
            logger.warning("%s; retrying in %.1f s", exc.message, delay)
        stopping.wait(delay)
        delay = min(delay * 2, longest)
    return None
