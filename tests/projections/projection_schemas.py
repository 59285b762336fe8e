"""The JSON Schemas the contract files must hold, derived from the code's tables and models."""

from __future__ import annotations

import json
from typing import Any

from squidmesh_es.projections import TABLES, ColumnType, Table
from squidmesh_es.read_model import RunSnapshot

_TYPES: dict[ColumnType, dict[str, Any]] = {
    ColumnType.TEXT: {"type": "string"},
    ColumnType.UUID: {"type": "string", "format": "uuid"},
    ColumnType.INTEGER: {"type": "integer"},
    ColumnType.BOOLEAN: {"type": "boolean"},
    ColumnType.TIMESTAMP: {"type": "string", "format": "date-time"},
    ColumnType.JSON: {},
}


def row_schema(table: Table) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for column in table.columns:
        prop = dict(_TYPES[column.type])
        if column.nullable and "type" in prop:
            prop["type"] = [prop["type"], "null"]
        properties[column.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": table.name,
        "description": f"One row of {table.name} (projections/<backend>/{table.ddl}.sql).",
        "type": "object",
        "properties": properties,
        "required": list(table.column_names),
        "additionalProperties": False,
    }


def expected_schemas() -> dict[str, dict[str, Any]]:
    schemas = {table.ddl: row_schema(table) for table in TABLES}
    document = RunSnapshot.model_json_schema(mode="serialization")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schemas["run_inspection_document"] = document
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
