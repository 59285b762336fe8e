"""Followers that derive the run catalog, run index and run inspection projections.

``Projections(mesh)`` opens the projection tables beside the journal (the contract DDL in
the top-level ``projections/`` folder), catches them up from their tracking positions,
rebuilds them, reports their status and serves ``list_runs`` from them.
"""

from squidmesh_es.projections._contract import TABLES, Column, ColumnType, Table, json_schema
from squidmesh_es.projections._followers import PROJECTIONS, Projections, ProjectionStatus
from squidmesh_es.projections._listing import (
    MAX_LIMIT,
    RunList,
    cursor_before,
    list_runs,
    run_cursor,
)
from squidmesh_es.projections._projection import (
    RunCatalog,
    RunIndex,
    RunInspection,
    RunProjection,
)
from squidmesh_es.projections._runner import RunProjectionRunner
from squidmesh_es.projections._system import (
    FOLLOWERS,
    RunCatalogFollower,
    RunIndexFollower,
    RunInspectionFollower,
    ViewFollower,
    system,
)
from squidmesh_es.projections._view import ProjectionView

__all__ = [
    "FOLLOWERS",
    "MAX_LIMIT",
    "PROJECTIONS",
    "TABLES",
    "Column",
    "ColumnType",
    "ProjectionStatus",
    "ProjectionView",
    "Projections",
    "RunCatalog",
    "RunCatalogFollower",
    "RunIndex",
    "RunIndexFollower",
    "RunInspection",
    "RunInspectionFollower",
    "RunList",
    "RunProjection",
    "RunProjectionRunner",
    "Table",
    "ViewFollower",
    "cursor_before",
    "json_schema",
    "list_runs",
    "run_cursor",
    "system",
]
