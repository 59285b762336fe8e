"""The ``squidmesh`` command line."""

from __future__ import annotations

import click

from squidmesh_es.cli._controls import (
    approve_command,
    cancel_command,
    forget_command,
    recover_command,
    reject_command,
    replay_command,
    resume_command,
)
from squidmesh_es.cli._dashboard import dashboard_command
from squidmesh_es.cli._deploy import deploy, runs
from squidmesh_es.cli._graph import graph_command
from squidmesh_es.cli._group import SquidMeshGroup
from squidmesh_es.cli._inspect import explain_command, inspect_command
from squidmesh_es.cli._list import list_command
from squidmesh_es.cli._projections import projections
from squidmesh_es.cli._scheduler import scheduler
from squidmesh_es.cli._worker import worker
from squidmesh_es.cli._workers import workers

__all__ = ["main"]


@click.group(cls=SquidMeshGroup)
@click.version_option(package_name="squidmesh-es", prog_name="squidmesh")
def main() -> None:
    """Operate squidmesh-es runs and workers."""


main.add_command(worker)
main.add_command(workers)
main.add_command(projections)
main.add_command(list_command)
main.add_command(inspect_command)
main.add_command(explain_command)
main.add_command(graph_command)
main.add_command(scheduler)
main.add_command(approve_command)
main.add_command(reject_command)
main.add_command(resume_command)
main.add_command(cancel_command)
main.add_command(forget_command)
main.add_command(replay_command)
main.add_command(recover_command)
main.add_command(dashboard_command)
main.add_command(deploy)
main.add_command(runs)
