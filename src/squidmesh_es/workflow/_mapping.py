"""Moving data between the run state and a step: input selection and output placement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from squidmesh_es.errors import MissingInputPath
from squidmesh_es.workflow._json import JSONObject, JSONValue

ContextPath = str | Sequence[str]
"""A path into the run state: ``"account.tier"`` or ``("account", "tier")``.

Use the sequence form when a key itself contains a dot.
"""


def normalize_path(path: ContextPath) -> tuple[str, ...]:
    """The path as a tuple of keys; a string is split on dots.

    Raises:
        TypeError: `path` is neither a string nor a sequence of strings.
    """
    if isinstance(path, str):
        return tuple(path.split("."))
    if not isinstance(path, Sequence) or not all(isinstance(key, str) for key in path):
        raise TypeError(f"a context path must be a string or a sequence of strings, got {path!r}")
    return tuple(path)


def walk(state: Mapping[str, JSONValue], path: Sequence[str]) -> tuple[JSONValue, int]:
    """Follow `path` into `state`: the value found and how many keys were followed.

    Fewer keys followed than the path has means the path is missing at the next key; the
    value is then meaningless.
    """
    current: object = state
    for depth, key in enumerate(path):
        if not isinstance(current, Mapping) or key not in current:
            return None, depth
        current = current[key]
    return cast(JSONValue, current), len(path)


@dataclass(frozen=True)
class InputBinding:
    """One entry of a step's input: `key` in the step's input takes the value at `path`."""

    key: str
    path: tuple[str, ...]

    def to_dict(self) -> JSONObject:
        """The spec form: ``{"key": "account_id", "path": ["account", "id"]}``."""
        return {"key": self.key, "path": list(self.path)}


def bindings_from(input: Sequence[str] | Mapping[str, ContextPath]) -> tuple[InputBinding, ...]:
    """The bindings an authored input declaration stands for.

    A sequence of names selects those top-level keys; a mapping renames values found at
    (nested) paths.

    Raises:
        TypeError: `input` has neither shape.
    """
    if isinstance(input, Mapping):
        bindings = []
        for key, path in input.items():
            if not isinstance(key, str):
                raise TypeError(f"input keys must be strings, got {key!r}")
            bindings.append(InputBinding(key, normalize_path(path)))
        return tuple(bindings)
    if isinstance(input, str) or not isinstance(input, Sequence):
        raise TypeError(f"input must be a sequence of names or a mapping, got {input!r}")
    return tuple(InputBinding(key, normalize_path((key,))) for key in input)


def run_state(payload: Mapping[str, JSONValue], context: Mapping[str, JSONValue]) -> JSONObject:
    """What steps and route conditions see: the payload, overlaid by the accumulated context."""
    return {**payload, **context}


def select_input(
    step: str, bindings: Sequence[InputBinding] | None, state: Mapping[str, JSONValue]
) -> JSONObject:
    """The input step `step` receives from `state`: all of it, or only what it binds.

    Unlike the original, selecting a top-level name that is absent is an error too: a step
    that declares what it reads should not run without it.

    Raises:
        MissingInputPath: a bound path is absent; checked before the step runs.
    """
    if bindings is None:
        return dict(state)
    selected: JSONObject = {}
    for binding in bindings:
        value, depth = walk(state, binding.path)
        if depth < len(binding.path):
            raise MissingInputPath(
                step=step, key=binding.key, path=binding.path, missing_at=binding.path[: depth + 1]
            )
        selected[binding.key] = value
    return selected


def place_output(
    output_key: str | None, context: Mapping[str, JSONValue], output: Mapping[str, JSONValue]
) -> JSONObject:
    """The run context after a step returned `output`: namespaced under `output_key`, or merged.

    Merging writes the output's top-level keys over the context's; parallel branches should
    namespace their outputs so they do not overwrite each other.
    """
    if output_key is None:
        return {**context, **output}
    return {**context, output_key: dict(output)}
