"""What the runtime needs from the projections layer above it, as a small protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from squidmesh_es.read_model import RunSummary

__all__ = ["ProjectionsPort"]


class ProjectionsPort(Protocol):
    """Followers the runtime nudges after commits and asks for run listings.

    ``squidmesh_es.projections.Projections`` implements it; ``Projections.attach(mesh)``
    plugs it in.
    """

    def after_command(self) -> None:
        """Catch up with the journal; must never raise."""
        ...

    def list_runs(self, **filters: Any) -> Sequence[RunSummary]:
        """Run summaries from the catalog, newest first."""
        ...
