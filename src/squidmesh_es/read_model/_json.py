"""The JSON shape of read models: one base model and the conversion of aggregate state to it.

Aggregate state holds datetimes and UUIDs inside nested maps (``applied_at``, ``paused_at``,
anomaly times). Read models promise that ``model_dump(mode="json")`` is JSON-safe and that
the same state always gives the same dump, so nested values are converted once, here, to
plain JSON: ISO-8601 strings for times, strings for ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, JsonValue

from squidmesh_es.workflow import canonical_json

__all__ = ["JsonMap", "ReadModel", "json_digest", "to_json", "to_json_map"]

JsonMap = dict[str, JsonValue]
"""A JSON object inside a read model (pydantic's ``JsonValue`` validates it)."""


class ReadModel(BaseModel):
    """Base of every read model: immutable, closed to unknown fields, JSON-safe when dumped."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def to_json(value: object) -> JsonValue:
    """``value`` as plain JSON: times as ISO-8601, ids and decimals as strings, tuples as lists.

    Anything else that is not JSON becomes its ``str``: a read model must always build, even
    from a history written by a newer or foreign writer.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, UUID | Decimal):
        return str(value)
    return str(value)


def to_json_map(value: object) -> JsonMap:
    """``value`` as a JSON object; anything that is not a mapping gives an empty one."""
    converted = to_json(value)
    return converted if isinstance(converted, dict) else {}


def json_digest(value: object) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``: equal values, equal digests."""
    return hashlib.sha256(canonical_json(to_json(value)).encode("utf-8")).hexdigest()
