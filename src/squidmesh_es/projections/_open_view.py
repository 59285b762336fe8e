"""Open the projection view that belongs beside a journal, from the journal's settings.

Every driver opens the same view, so the catalog a ``System`` runner keeps is the one
``Projections`` and ``squidmesh list`` read: on SQLite the tables live in the journal's file,
on Postgres in its schema (tracking table ``squidmesh_projections_tracking``), and in memory
for ``memory://`` journals (one view per follower: there is nothing to share).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from squidmesh_es.projections._memory_view import MemoryProjectionView
from squidmesh_es.projections._sql_view import PostgresProjectionView, SQLiteProjectionView
from squidmesh_es.projections._view import ProjectionView

__all__ = ["VIEW_NAME", "open_view", "view_class"]

VIEW_NAME = "squidmesh_projections"
"""Environment name of the view: on Postgres its tracking table is ``<name>_tracking``."""

_VIEWS: dict[str, type[ProjectionView]] = {
    "eventsourcing.sqlite": SQLiteProjectionView,
    "eventsourcing.postgres": PostgresProjectionView,
    "squidmesh_es.runtime._postgres:PostgresFactory": PostgresProjectionView,
    "squidmesh_es.runtime._sqlite:SQLiteFactory": SQLiteProjectionView,
}


def view_class(settings: Mapping[str, str]) -> type[ProjectionView]:
    """The view class for the journal ``settings`` (``journal_env(url)``) point at."""
    module = settings.get("PERSISTENCE_MODULE") or "eventsourcing.popo"
    return _VIEWS.get(module, MemoryProjectionView)  # the library's POPO, or ours


def open_view(settings: Mapping[str, str]) -> ProjectionView:
    """The view beside the journal ``settings`` point at.

    The library's factory creates the view's tables when missing, even for a journal
    opened with ``create=False``: the view is derived state beside a journal that exists,
    and read-only commands need its tables to answer.
    """
    cls = view_class(settings)
    if cls is MemoryProjectionView:
        view: ProjectionView = MemoryProjectionView()
    else:
        env = {k: v for k, v in settings.items() if k != "CREATE_TABLE"}
        factory: InfrastructureFactory[Any] = InfrastructureFactory.construct(
            Environment(VIEW_NAME, env)
        )
        view = factory.tracking_recorder(cls)
    return view
