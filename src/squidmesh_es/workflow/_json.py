"""JSON values: the one alias for them, a safety check, strict equality and canonical form.

This module imports only the standard library, so the canonical form can be checked from any
interpreter without installing the package.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TypeGuard

JSONValue = str | int | float | bool | None | list["JSONValue"] | dict[str, "JSONValue"]
"""Any value that survives a JSON round trip unchanged."""

JSONObject = dict[str, JSONValue]
"""A JSON object: string keys, JSON values."""


_SCALARS = (str, bool, int)  # a tuple: isinstance with a union costs twice as much


def is_json_value(value: object) -> bool:
    """Whether `value` round-trips through JSON unchanged.

    Tuples, sets, non-string keys and non-finite floats are refused: each would come back as
    something else (or not at all), and a persisted value must read back as it was written.
    """
    if value is None or isinstance(value, _SCALARS):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def json_equal(left: object, right: object) -> bool:
    """JSON equality: `True` is not `1`, but `1` is `1.0`.

    Python's `==` treats booleans as numbers; a JSON document does not, and conditions read
    JSON documents.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether `value` is a JSON number (an `int` or `float`, never a `bool`)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def canonical_json(value: object) -> str:
    """The one text for a JSON value: sorted keys, no whitespace, UTF-8 characters kept.

    Key order and hash seeds change nothing, so two processes agree on the text.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_hex(value: object) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
