"""The code's tables match the contract files users query by: DDL per backend, JSON Schemas."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from projection_schemas import expected_schemas, render

from squidmesh_es import SquidMesh
from squidmesh_es.projections import TABLES, ColumnType, Projections, json_schema
from squidmesh_es.projections._contract import contract_root, load_ddl

from conftest import POSTGRES_BASE_URL

SQLITE_TYPES = {
    ColumnType.TEXT: "TEXT",
    ColumnType.UUID: "TEXT",
    ColumnType.INTEGER: "INTEGER",
    ColumnType.BOOLEAN: "INTEGER",
    ColumnType.TIMESTAMP: "TEXT",
    ColumnType.JSON: "TEXT",
}
POSTGRES_TYPES = {
    ColumnType.TEXT: {"text"},
    ColumnType.UUID: {"uuid"},
    ColumnType.INTEGER: {"integer", "bigint"},
    ColumnType.BOOLEAN: {"boolean"},
    ColumnType.TIMESTAMP: {"timestamp with time zone"},
    ColumnType.JSON: {"jsonb"},
}


def test_contract_files_are_read_from_the_top_level_projections_folder() -> None:
    assert contract_root().name == "projections"
    assert {p.name for p in contract_root().iterdir()} >= {"sqlite", "postgres", "schemas"}


def test_sqlite_ddl_declares_the_columns_the_code_writes() -> None:
    db = sqlite3.connect(":memory:")
    for table in TABLES:
        for statement in load_ddl("sqlite", table):
            db.execute(statement)
        info = db.execute(f"PRAGMA table_info({table.name})").fetchall()
        assert [row[1] for row in info] == list(table.column_names), table.name
        for (_, name, type_, notnull, _, _pk), column in zip(info, table.columns, strict=True):
            assert type_ == SQLITE_TYPES[column.type], name
            assert bool(notnull) != column.nullable, name
        assert [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])] == list(
            table.primary_key
        )


@pytest.mark.postgres_only
def test_postgres_ddl_declares_the_columns_the_code_writes(database_url: str) -> None:
    with SquidMesh.open(database_url) as mesh, Projections(mesh):
        pass
    schema = parse_qs(urlsplit(database_url).query)["schema"][0]
    with psycopg.connect(POSTGRES_BASE_URL.split("?", 1)[0]) as conn:
        for table in TABLES:
            rows = conn.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table.name),
            ).fetchall()
            assert [r[0] for r in rows] == list(table.column_names), table.name
            for (name, data_type, nullable), column in zip(rows, table.columns, strict=True):
                assert data_type in POSTGRES_TYPES[column.type], name
                assert (nullable == "YES") == column.nullable, name


def test_json_schemas_match_the_rows_and_the_snapshot_document() -> None:
    for name, schema in expected_schemas().items():
        path = contract_root() / "schemas" / f"{name}.json"
        assert path.read_text(encoding="utf-8") == render(schema), (
            f"{path} is stale; regenerate it from tests/projections/projection_schemas.py"
        )
        assert json_schema(name) == schema


def test_every_table_has_ddl_for_both_backends_and_a_schema() -> None:
    for table in TABLES:
        for backend in ("sqlite", "postgres"):
            assert load_ddl(backend, table), (backend, table.name)
        assert json_schema(table.ddl)["title"] == table.name
