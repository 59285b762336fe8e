"""The journal's transcoder: the library's JSON format, written by orjson where that is exact.

Why: encoding with the library's `JSONTranscoder` (the standard `json` encoder, with a
Python ``default`` hook for each datetime) was one of the largest single costs of a step on
the memory backend, queue snapshots included. orjson writes the same bytes for what our
journal holds, 2.4 times faster an event and 3.6 times a snapshot (docs/performance.md).

The format does not change. Datetimes, UUIDs, Decimals and the host's transcodings are
still tagged ``{"_type_": ..., "_data_": ...}`` by the registered transcodings, so what is
written reads back with the library's `JSONTranscoder` (earlier versions of squidmesh-es,
eventsourcing tooling). Decoding stays the library's: orjson plus a Python pass over the tags
was not clearly faster, for a fraction of a percent of the CPU.

orjson writes a few values differently from `json`: a `UUID` as a plain string, an `Enum`
member as its value, NaN and infinities as ``null``; it refuses ints past 64 bits, non-str
dict keys and deep nesting. When a value holds any of these, `encode` uses the library's
encoder instead, which writes (or refuses) it exactly as before. Finding them costs a walk
over the value after orjson wrote it, about as long as orjson itself takes: the price of
never reading a value back as a different type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from itertools import chain
from typing import Any, Final
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

__all__ = ["JournalTranscoder"]

_OPTIONS: Final = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
"""Hand datetimes, dataclasses and subclasses of builtins to the hook, as `json` does."""

_ALIKE: Final[frozenset[type]] = frozenset({str, int, bool, type(None)})
"""Leaves orjson writes exactly as `json` does (an int past 64 bits makes orjson fail)."""

_OWN_WAY: Final = (UUID, Enum, orjson.Fragment)
"""Values orjson writes itself where `json` would call the hook."""

_JSON_WRITES: Final = (str, int, float, list, tuple, dict)
"""What `json` writes itself, subclasses included, without looking for a transcoding."""

_RECORDS: Final = frozenset({dict})
"""The kinds of a map of records, such as the attempts in a queue snapshot."""

_Tagger = Callable[[Any], object]


class _Unlike(Exception):
    """orjson would not write this value as `json` does."""


class JournalTranscoder(JSONTranscoder):
    """The library's `JSONTranscoder`, encoding through orjson where the result is the same.

    Whatever orjson cannot write as `json` would goes through the library's encoder, so
    `decode` of the bytes gives the same values either way.
    """

    def __init__(self) -> None:
        self._settled: set[type] = set(_ALIKE)
        """Types the walk passes over: alike leaves, and registered types orjson hands to
        the hook (which checks them)."""
        self._taggers: dict[type, _Tagger] = {}
        """Per registered type the hook meets, how to write it as the library does."""
        super().__init__()

    def register(self, transcoding: Transcoding) -> None:
        """Register ``transcoding`` as the library does."""
        super().register(transcoding)
        kind = transcoding.type
        if kind not in (float, list, tuple, dict) and not issubclass(kind, _OWN_WAY):
            self._settled.add(kind)
        if issubclass(kind, _JSON_WRITES):
            self._taggers.pop(kind, None)  # json writes it as its base type, transcoding or not
        elif kind is datetime and type(transcoding) is DatetimeAsISO:
            self._taggers[kind] = _datetime_tagger(transcoding.name)
        else:
            self._taggers[kind] = _tagger(transcoding, self._settled)

    def encode(self, obj: Any) -> bytes:
        """``obj`` as the library's JSON, written by orjson unless it would differ."""
        try:
            data = orjson.dumps(obj, default=self._tag, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().encode(obj)
        # After orjson succeeded: the value is not cyclic and not deeper than it allows.
        values = obj.values() if type(obj) is dict else (obj,)  # events and snapshots: dicts
        if not _alike(values, self._settled):
            return super().encode(obj)
        return data

    def _tag(self, obj: object) -> object:
        """The hook orjson calls: tag ``obj`` as the library does, or give up on orjson."""
        tagger = self._taggers.get(type(obj))
        if tagger is None:
            raise _Unlike  # the library's encoder writes it itself, or raises its own error
        return tagger(obj)


def _tagger(transcoding: Transcoding, settled: set[type]) -> _Tagger:
    """Tag a value with ``transcoding``, unless orjson would write its data differently."""

    def tag(obj: object) -> object:
        data = transcoding.encode(obj)
        if type(data) is not str and not _alike((data,), settled):
            raise _Unlike
        return {"_type_": transcoding.name, "_data_": data}

    return tag


def _datetime_tagger(name: str) -> _Tagger:
    """Tag a datetime as `DatetimeAsISO` does; orjson formats UTC ones 3 times faster.

    For `datetime.UTC` orjson's RFC 3339 text is ``isoformat()`` exactly (microseconds
    only when not zero, ``+00:00``); other zones keep ``isoformat()``.
    """
    prefix = b'{"_type_":' + orjson.dumps(name) + b',"_data_":'

    def tag(value: datetime) -> object:
        if value.tzinfo is UTC:
            return orjson.Fragment(prefix + orjson.dumps(value) + b"}")
        return {"_type_": name, "_data_": value.isoformat()}

    return tag


def _alike(values: Iterable[Any], settled: set[type]) -> bool:
    """Whether orjson writes each of ``values`` as `json` does, or hands it to the hook."""
    kinds = set(map(type, values))
    if kinds <= settled:
        return True
    if kinds == _RECORDS:
        fields = chain.from_iterable(map(dict.values, values))
        if settled.issuperset(map(type, fields)):
            return True  # records of plain fields, checked in one pass instead of a call each
    for value in values:
        kind = type(value)
        if kind in settled:
            continue
        if kind is dict:
            if not _alike(value.values(), settled):
                return False
        elif kind is list or kind is tuple:
            if not _alike(value, settled):
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif isinstance(value, _OWN_WAY):
            return False
    return True
