"""The ``squidmesh`` command line."""

from __future__ import annotations

import click

from squidmesh_es.cli._worker import worker

__all__ = ["main"]


@click.group()
def main() -> None:
    """Operate squidmesh-es runs and workers."""


main.add_command(worker)
