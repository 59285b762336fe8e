"""``squidmesh scheduler``: deliver cron ticks of the imported workflows until SIGTERM or Ctrl-C.

Several may run against one journal (for availability): each tick still starts one run.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from types import FrameType

import click

from squidmesh_es.cli._logging import configure_logging, logging_options
from squidmesh_es.cli._options import (
    database_url_option,
    import_option,
    load_workflows,
    open_journal,
)
from squidmesh_es.runtime import Scheduler

__all__ = ["scheduler"]

logger = logging.getLogger("squidmesh_es.cli.scheduler")


@click.command()
@database_url_option("Journal to start runs on (also SQUIDMESH_DATABASE_URL).")
@import_option(
    required=True,
    help="Module whose Workflow classes' cron triggers are scheduled; repeat for several.",
)
@click.option("--interval-seconds", default=1.0, show_default=True, help="Time between passes.")
@click.option(
    "--catch-up-seconds",
    default=3600.0,
    show_default=True,
    help="How far back missed ticks are still delivered after a restart.",
)
@click.option(
    "--max-ticks",
    default=1,
    show_default=True,
    help="Most missed ticks one trigger delivers in one pass (the newest).",
)
@logging_options
def scheduler(
    database_url: str,
    modules: tuple[str, ...],
    interval_seconds: float,
    catch_up_seconds: float,
    max_ticks: int,
    log_level: str,
    log_format: str,
) -> None:
    """Start a run for each due cron tick of the imported workflows until stopped.

    SIGTERM or Ctrl-C stops after the delivery in hand; nothing is left half-started.
    """
    configure_logging(log_level, log_format)
    workflows = load_workflows(modules)
    with open_journal(database_url, workflows=workflows) as mesh:
        running = Scheduler(
            mesh,
            workflows=workflows,
            interval=timedelta(seconds=interval_seconds),
            catch_up=timedelta(seconds=catch_up_seconds),
            max_ticks=max_ticks,
        )

        def stop(signum: int, frame: FrameType | None) -> None:
            logger.info("stopping scheduler (signal %d)", signum)
            running.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        names = ", ".join(f"{w.name}.{t.name}" for w, t in running.triggers()) or "nothing"
        logger.info("scheduler evaluates %s", names)
        running.run_forever()
        logger.info("scheduler stopped")
