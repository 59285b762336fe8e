"""Route conditions: a comparison of one value in the run state against a JSON constant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from squidmesh_es.workflow._json import JSONObject, JSONValue, canonical_json, is_number, json_equal
from squidmesh_es.workflow._mapping import ContextPath, normalize_path, walk
from squidmesh_es.workflow._vocab import ConditionOperator


@dataclass(frozen=True)
class Condition:
    """Compares the value at `path` in the run state with `value`.

    Build one with `equals`, `greater_than` or `less_than`. A missing path, or a non-number
    under a numeric operator, does not match: routing falls through to the next route.
    """

    path: tuple[str, ...]
    operator: ConditionOperator
    value: JSONValue
    """A JSON constant; the selected route is persisted, so it must survive JSON."""

    def __post_init__(self) -> None:
        if not isinstance(self.operator, ConditionOperator):
            raise TypeError(f"condition operator must be a ConditionOperator: {self.operator!r}")
        if not isinstance(self.path, tuple):
            raise TypeError(f"condition path must be a tuple of keys, got {self.path!r}")

    def matches(self, state: Mapping[str, JSONValue]) -> bool:
        """Whether the value at `path` in `state` satisfies the comparison."""
        found, depth = walk(state, self.path)
        if depth < len(self.path):
            return False
        if self.operator is ConditionOperator.EQUALS:
            return json_equal(found, self.value)
        expected = self.value
        if is_number(found) and is_number(expected):
            if self.operator is ConditionOperator.GREATER_THAN:
                return found > expected
            return found < expected
        return False

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"path": ["risk", "score"], "less_than": 30}``."""
        return {"path": list(self.path), self.operator.value: self.value}

    def describe(self) -> str:
        """One line for people: ``risk.score less_than 30``."""
        return f"{'.'.join(self.path)} {self.operator.value} {canonical_json(self.value)}"


def equals(path: ContextPath, value: JSONValue) -> Condition:
    """Matches when the value at `path` equals `value` (JSON equality: ``true`` is not ``1``)."""
    return Condition(normalize_path(path), ConditionOperator.EQUALS, value)


def greater_than(path: ContextPath, value: int | float) -> Condition:
    """Matches when the value at `path` is a number greater than `value`."""
    return Condition(normalize_path(path), ConditionOperator.GREATER_THAN, value)


def less_than(path: ContextPath, value: int | float) -> Condition:
    """Matches when the value at `path` is a number less than `value`."""
    return Condition(normalize_path(path), ConditionOperator.LESS_THAN, value)
