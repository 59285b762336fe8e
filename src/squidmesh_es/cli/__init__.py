"""The ``squidmesh`` command line."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group()
def main() -> None:
    """Operate squidmesh-es runs and workers."""
