"""How large a value the journal takes, measured once as the JSON it is stored as.

Every value a command brings (a payload, metadata, a step's output or failure reason, a
dynamic-work proposal, a runtime spec) is measured where it enters, before anything is
written: over the limit, the command is refused with `PayloadTooLarge`. The same pass finds
strings that are not valid Unicode (a lone surrogate), which the journal could not encode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from squidmesh_es.errors import InvalidArgument, Issue, PayloadTooLarge, PayloadValidationError

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_VALUE_BYTES", "Limits", "json_size"]

DEFAULT_MAX_VALUE_BYTES = 1 << 20
"""1 MiB: the default limit of one value, as compact UTF-8 JSON."""

DEFAULT_MAX_REQUEST_BYTES = 4 << 20
"""4 MiB: the default limit of all values one command brings together."""


@dataclass(frozen=True)
class Limits:
    """The size limits a runtime enforces; see `docs/operations.md` for why these defaults."""

    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    """Largest payload, metadata, step output, failure reason or dynamic-work proposal."""
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    """Largest sum of the values of one command (a start's payload, metadata and spec)."""

    def __post_init__(self) -> None:
        for name in ("max_value_bytes", "max_request_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(name, "must be a positive number of bytes")
        if self.max_request_bytes < self.max_value_bytes:
            raise InvalidArgument("max_request_bytes", "must be at least max_value_bytes")

    def measure(self, value: object, *, what: str) -> int:
        """The size of ``value`` as stored; refuse it over ``max_value_bytes``.

        Raises:
            PayloadTooLarge: ``value`` is over the limit.
            PayloadValidationError: a payload holds a lone surrogate (``invalid_unicode``).
            InvalidArgument: any other value holds one.
        """
        size = json_size(value, what=what)
        if size > self.max_value_bytes:
            raise PayloadTooLarge(what=what, size=size, limit=self.max_value_bytes)
        return size

    def measure_request(self, values: dict[str, object]) -> int:
        """Measure each of ``values`` (named by what they are), then their sum.

        Raises:
            PayloadTooLarge: one value, or all of them together, over its limit.
            PayloadValidationError, InvalidArgument: a value is not valid Unicode.
        """
        total = sum(self.measure(value, what=what) for what, value in values.items())
        if total > self.max_request_bytes:
            raise PayloadTooLarge(what="request", size=total, limit=self.max_request_bytes)
        return total


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
"""What ``json.dumps`` with these options would build on every call (it holds no state)."""


def json_size(value: object, *, what: str = "value") -> int:
    """Bytes of ``value`` as compact UTF-8 JSON; objects JSON cannot hold count as text.

    Raises:
        PayloadValidationError: ``what`` is ``payload`` and a string is a lone surrogate.
        InvalidArgument: another value holds a lone surrogate.
    """
    text = _COMPACT.encode(value)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        path = _surrogate_path(value) or ()
        message = "a string holds a lone surrogate, which is not valid Unicode"
        if what == "payload":
            raise PayloadValidationError(
                "payload is not valid Unicode", [Issue(path, "invalid_unicode", message)]
            ) from None
        where = ".".join(str(p) for p in path) or "<root>"
        raise InvalidArgument(what, f"{message} (at {where})") from None


def _surrogate_path(value: object) -> tuple[str | int, ...] | None:
    """Where the first lone surrogate in ``value`` is (a key counts as its own place)."""
    if isinstance(value, str):
        return None if _encodable(value) else ()
    if isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(str(key)):
                return (str(key).encode("utf-8", "backslashreplace").decode(),)
            found = _surrogate_path(item)
            if found is not None:
                return (str(key), *found)
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _surrogate_path(item)
            if found is not None:
                return (index, *found)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
