"""``squidmesh projections run | rebuild | status``: operate the catalog, index and inspection."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

import click

from squidmesh_es.cli._console import print_table
from squidmesh_es.cli._logging import configure_logging, logging_options
from squidmesh_es.cli._options import open_journal
from squidmesh_es.projections import Projections, ProjectionStatus
from squidmesh_es.runtime import DEFAULT_DATABASE_URL

__all__ = ["projections"]

logger = logging.getLogger("squidmesh_es.cli.projections")

database_url_option = click.option(
    "--database-url",
    envvar="SQUIDMESH_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="Journal the projections follow (also SQUIDMESH_DATABASE_URL).",
)


@click.group()
def projections() -> None:
    """Follow, rebuild and check the run catalog, run index and run inspection."""


@projections.command()
@database_url_option
@click.option("--poll-seconds", default=0.2, show_default=True, help="Check for new events.")
@click.option(
    "--retry-seconds", default=30.0, show_default=True, help="Retry a stopped projection."
)
@logging_options
def run(
    database_url: str, poll_seconds: float, retry_seconds: float, log_level: str, log_format: str
) -> None:
    """Follow the journal in this process until SIGTERM or Ctrl-C.

    Starts by catching up from each projection's stored position, so a backlog left while no
    follower ran is applied first.
    """
    configure_logging(log_level, log_format)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("stopping projections (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_journal(database_url) as mesh, Projections(mesh) as followers:
        logger.info("following %s", ", ".join(followers.names()))
        followers.run_forever(stop, poll_interval=poll_seconds, retry_interval=retry_seconds)


@projections.command()
@database_url_option
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar on stderr.")
def rebuild(database_url: str, name: str | None, as_json: bool, quiet: bool) -> None:
    """Rebuild NAME (default: every projection) beside the live one, then switch readers.

    The journal is replayed from its first event into new tables while readers (and a
    running `squidmesh projections run`) keep the current ones; once the new tables caught
    up, they take the old ones' place in one transaction. Readers never see an empty view.
    """
    progress = None if quiet else ProgressLine(sys.stderr)
    with open_journal(database_url) as mesh, Projections(mesh) as followers:
        applied = followers.rebuild(name, progress=progress)
        statuses = [s for s in followers.status() if s.name.split(".")[0] in applied]
    _print_statuses(statuses, as_json)
    if any(s.error_code for s in statuses):
        raise SystemExit(1)


class ProgressLine:
    """A progress bar per projection on ``stream``: position, events/s and time left.

    On a terminal it redraws one line; elsewhere (logs, CI) it prints a line a second.
    """

    WIDTH = 24

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.redraw = stream.isatty()
        self._started: dict[str, float] = {}
        self._printed_at = float("-inf")

    def __call__(self, name: str, position: int, head: int, applied: int) -> None:
        """Show ``name`` at ``position`` of ``head`` with ``applied`` events so far."""
        now = self.clock()
        started = self._started.setdefault(name, now)
        done = position >= head
        if not (self.redraw or done or now - self._printed_at >= 1.0):
            return
        self._printed_at = now
        line = render_progress(name, position, head, applied, elapsed=now - started)
        if self.redraw:
            self.stream.write("\r" + line + ("\n" if done else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def render_progress(name: str, position: int, head: int, applied: int, *, elapsed: float) -> str:
    """``run_catalog [#####-----]  52%  3120 events  4210 events/s  ETA 3s``."""
    share = min(position / head, 1.0) if head else 1.0
    filled = round(share * ProgressLine.WIDTH)
    bar = "#" * filled + "-" * (ProgressLine.WIDTH - filled)
    rate = applied / elapsed if elapsed > 0 else 0.0
    ids_per_second = position / elapsed if elapsed > 0 else 0.0
    left = (head - position) / ids_per_second if ids_per_second > 0 else 0.0
    eta = "done" if share >= 1.0 else f"ETA {left:.0f}s"
    return f"{name:<16} [{bar}] {share:>4.0%}  {applied} events  {rate:.0f} events/s  {eta}"


@projections.command()
@database_url_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(database_url: str, as_json: bool) -> None:
    """Show each projection's position, lag and the error that stopped it, if any."""
    with open_journal(database_url, create=False) as mesh, Projections(mesh) as followers:
        statuses = followers.status()
    _print_statuses(statuses, as_json)


def _print_statuses(statuses: list[ProjectionStatus], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"projections": [s.to_dict() for s in statuses]}, indent=2))
        return
    print_table(
        ("PROJECTION", "STATE", "POSITION", "HEAD", "LAG", "EVENTS"),
        (
            (s.name, s.state, str(s.position), str(s.head), str(s.lag), str(s.events_applied))
            for s in statuses
        ),
        right=(2, 3, 4, 5),
        status_column=1,
    )
    for s in statuses:
        if s.error_code is not None:
            click.echo(f"{s.name} stopped at {s.error_position}: {s.error_message}")
