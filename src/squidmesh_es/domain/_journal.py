"""What both aggregates share: tolerant event application and the anomaly record.

Command methods check their rules and raise before anything is written, so our own writes
never produce anomalies. Histories written by other code (older versions, hosts that append
events directly, partial failures) still load: an event that breaks a rule is kept in the
stream, leaves the state unchanged, and is reported as a named anomaly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Final

from squidmesh_es.domain._vocab import AnomalyReason

__all__ = [
    "ALREADY_RECORDED",
    "MAX_KEPT_ANOMALIES",
    "AnomalyLog",
    "JSONDict",
    "Recorded",
    "ToleratedEvent",
    "Verdict",
    "digest",
]

JSONDict = dict[str, Any]
"""A JSON-shaped mapping: str keys; str, int, float, bool, None, UUID, datetime, list, dict."""

MAX_KEPT_ANOMALIES = 100
"""Newest anomalies kept in aggregate state; ``anomaly_count`` keeps counting past it."""


class Recorded(Enum):
    """What a rule returns when the fact is already in the journal."""

    ALREADY = "already_recorded"


ALREADY_RECORDED: Final = Recorded.ALREADY
"""The fact is already in the journal: no anomaly, and nothing to write."""

Verdict = AnomalyReason | Recorded | None
"""A rule's answer: ``None`` (apply it), ``ALREADY_RECORDED``, or the anomaly it would be."""


class AnomalyLog:
    """Aggregate mixin holding the anomalies found while applying events.

    It also gives the aggregates a cheap copy. The repository hands out a copy of its cached
    aggregate on every load; a generic deep copy walks every stored input and result, which
    dominated the cost of a step. Our state is only ever changed by replacing container
    entries or updating the records listed in ``MUTABLE_RECORDS``, so copying containers one
    level deep, and those records one level deeper, gives an independent object.
    """

    MUTABLE_RECORDS: tuple[str, ...] = ()
    """Dict-of-dict attributes whose inner records are updated in place."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        clone = object.__new__(type(self))
        state = self.__dict__.copy()
        records = self.MUTABLE_RECORDS
        for name, value in state.items():
            if name in records:
                state[name] = {key: dict(record) for key, record in value.items()}
            elif isinstance(value, dict):
                state[name] = dict(value)
            elif isinstance(value, list):
                state[name] = list(value)
        clone.__dict__.update(state)
        memo[id(self)] = clone
        return clone

    anomalies: list[JSONDict]
    anomaly_count: int

    def note_anomaly(self, reason: AnomalyReason, event: object, **fields: Any) -> None:
        """Record that ``event`` was not applied because of ``reason``."""
        record: JSONDict = {
            "reason": reason.value,
            "event": type(event).__name__,
            "version": getattr(event, "originator_version", None),
            "at": getattr(event, "timestamp", None),
        }
        record.update({k: v for k, v in fields.items() if v is not None})
        self.anomalies.append(record)
        del self.anomalies[:-MAX_KEPT_ANOMALIES]
        self.anomaly_count += 1


class ToleratedEvent:
    """Event mixin: an event missing a declared field is a ``malformed_entry`` anomaly.

    Subclasses implement ``evolve`` instead of ``apply``.
    """

    REQUIRED: ClassVar[tuple[str, ...] | None] = None
    """The fields an entry must hold; ``None``: every declared field."""

    def apply(self, aggregate: Any) -> None:
        """Evolve ``aggregate`` when every declared field is present; else note an anomaly."""
        present = vars(self)
        names = _REQUIRED_NAMES.get(type(self))
        if names is None:
            names = _required_names(self)
        if not present.keys() >= names:
            missing = sorted(name for name in names if name not in present)
            aggregate.note_anomaly(AnomalyReason.MALFORMED_ENTRY, self, missing_fields=missing)
            return
        self.evolve(aggregate)

    def evolve(self, aggregate: Any) -> None:
        """Apply this well-formed event to ``aggregate``."""
        raise NotImplementedError


_REQUIRED_NAMES: dict[type, frozenset[str]] = {}
"""`ToleratedEvent.REQUIRED` of each event class, as a set: ``dataclasses.fields`` costs
more than the rest of applying most events, and a class's fields never change."""


def _required_names(event: ToleratedEvent) -> frozenset[str]:
    names = event.REQUIRED
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(event))  # type: ignore[arg-type]
    required = frozenset(names)
    _REQUIRED_NAMES[type(event)] = required
    return required


def _canonical(value: Any) -> Any:
    # Type tests against tuples: isinstance with a union costs twice as much.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""What ``json.dumps`` with these options would build on every call (it holds no state)."""


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON form of ``value``: equal values give equal digests."""
    text = _CANONICAL_JSON.encode(_canonical(value))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
