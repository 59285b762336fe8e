"""The projection contract: table shapes in code, and the DDL and JSON Schemas users query by.

The SQL and JSON Schema files live in the top-level ``projections/`` folder of the source
tree, which the wheel ships inside this package as ``_contract/``. Code reads them from
there instead of repeating them, and a test checks that the columns declared here match
the files on every backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CATALOG",
    "INDEX",
    "INSPECTION",
    "STATE",
    "TABLES",
    "Column",
    "ColumnType",
    "Table",
    "contract_root",
    "json_schema",
    "load_ddl",
]


class ColumnType(StrEnum):
    """Portable column types; each backend maps them to its own (see the DDL files)."""

    TEXT = "text"
    UUID = "uuid"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    JSON = "json"


@dataclass(frozen=True)
class Column:
    """One column of a projection table."""

    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    """One projection table: its columns in DDL order and its primary key."""

    name: str
    ddl: str
    """The DDL file stem under ``projections/<backend>/``."""
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in DDL order."""
        return tuple(c.name for c in self.columns)

    def beside(self) -> Table:
        """The table a rebuild fills beside this one, before it takes this one's place."""
        return replace(self, name=f"{self.name}_rebuild")

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


T = ColumnType

CATALOG = Table(
    name="squidmesh_run_catalog",
    ddl="run_catalog",
    columns=(
        Column("run_id", T.UUID),
        Column("workflow", T.TEXT),
        Column("trigger", T.TEXT, nullable=True),
        Column("queue", T.TEXT),
        Column("status", T.TEXT),
        Column("terminal", T.BOOLEAN),
        Column("terminal_status", T.TEXT, nullable=True),
        Column("definition_version", T.TEXT, nullable=True),
        Column("definition_fingerprint", T.TEXT, nullable=True),
        Column("parent_run_id", T.UUID, nullable=True),
        Column("replayed_from_run_id", T.UUID, nullable=True),
        Column("started_at", T.TIMESTAMP),
        Column("updated_at", T.TIMESTAMP),
        Column("ended_at", T.TIMESTAMP, nullable=True),
        Column("deadline", T.JSON, nullable=True),
        Column("anomalies", T.JSON),
        Column("anomaly_count", T.INTEGER),
        Column("run_version", T.INTEGER),
        Column("queue_version", T.INTEGER, nullable=True),
    ),
    primary_key=("run_id",),
)
"""A row per run: what ``list_runs`` reads."""

INDEX = Table(
    name="squidmesh_run_index",
    ddl="run_index",
    columns=(
        Column("key", T.TEXT),
        Column("value", T.TEXT),
        Column("run_id", T.UUID),
        Column("started_at", T.TIMESTAMP),
    ),
    primary_key=("key", "value", "run_id"),
)
"""A row per lookup key of a run."""

INSPECTION = Table(
    name="squidmesh_run_inspection",
    ddl="run_inspection",
    columns=(
        Column("run_id", T.UUID),
        Column("document", T.JSON),
        Column("updated_at", T.TIMESTAMP),
        Column("run_version", T.INTEGER),
        Column("queue_version", T.INTEGER, nullable=True),
    ),
    primary_key=("run_id",),
)
"""A row per run holding its latest snapshot document."""

STATE = Table(
    name="squidmesh_projection_state",
    ddl="projection_state",
    columns=(
        Column("projection", T.TEXT),
        Column("events_applied", T.INTEGER),
        Column("error_code", T.TEXT, nullable=True),
        Column("error_message", T.TEXT, nullable=True),
        Column("error_position", T.INTEGER, nullable=True),
        Column("failed_at", T.TIMESTAMP, nullable=True),
    ),
    primary_key=("projection",),
)
"""Follower bookkeeping: events applied and the error that stopped a follower."""

TABLES = (CATALOG, INDEX, INSPECTION, STATE)
"""Every projection table, in creation order."""

BACKENDS = ("sqlite", "postgres")
"""Backends with SQL DDL; the in-memory views hold the same rows in dicts."""


@cache
def contract_root() -> Path:
    """The folder holding ``sqlite/``, ``postgres/`` and ``schemas/``.

    An installed wheel carries it as package data (``_contract/``); a source checkout, where
    the package is imported from ``src/``, reads the top-level ``projections/`` folder.
    """
    packaged = Path(__file__).with_name("_contract")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "projections"


@cache
def load_ddl(backend: str, table: Table) -> tuple[str, ...]:
    """The statements of ``table``'s DDL file for ``backend``, comments removed."""
    text = (contract_root() / backend / f"{table.ddl}.sql").read_text(encoding="utf-8")
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())


@cache
def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``projections/schemas/<name>.json``."""
    path = contract_root() / "schemas" / f"{name}.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema
