"""The journal's mapper: typed errors for undecodable events, and sealed personal data."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

from eventsourcing.domain import CanInitAggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from squidmesh_es.errors import CorruptedEvent
from squidmesh_es.runtime._sealing import Sealer

__all__ = ["JournalMapper"]


class JournalMapper(Mapper[UUID]):
    """The library's mapper, raising ``CorruptedEvent`` for a payload it cannot decode.

    An event that decodes but lacks a field is left to the aggregate, which records a
    ``malformed_entry`` anomaly; a creation event without its required fields cannot build
    an aggregate at all, so it is reported here.

    With a ``sealer`` (the runtime sets one), the personal fields of erasable runs are sealed
    on the way in and opened on the way out (see `_sealing`).
    """

    sealer: Sealer | None = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Encode ``domain_event``, its personal fields sealed if its run is erasable."""
        if self.sealer is not None:
            domain_event = self.sealer.seal(domain_event)
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Decode ``stored_event``; raise ``CorruptedEvent`` naming where it is."""
        try:
            event = super().to_domain_event(stored_event)
        except Exception as exc:  # noqa: BLE001 - any decode failure is a corrupt entry
            raise _corrupted(stored_event, type(exc).__name__) from exc
        if isinstance(event, CanInitAggregate) and dataclasses.is_dataclass(event):
            missing = [
                f.name
                for f in dataclasses.fields(event)
                if f.name not in vars(event) and not _has_default(f)
            ]
            if missing:
                raise _corrupted(stored_event, f"missing fields {', '.join(sorted(missing))}")
        if self.sealer is not None:
            plain = self.cipher is None and self.compressor is None
            raw = stored_event.state if plain else None
            self.sealer.open(stored_event.topic, event, raw)
        return event


def _has_default(field: dataclasses.Field[Any]) -> bool:
    """A field added later with a default: events stored before it read as the default."""
    return field.default is not dataclasses.MISSING or (
        field.default_factory is not dataclasses.MISSING
    )


def _corrupted(stored_event: StoredEvent, reason: str) -> CorruptedEvent:
    return CorruptedEvent(
        aggregate=_aggregate_name(stored_event.topic),
        originator_id=stored_event.originator_id,
        version=stored_event.originator_version,
        topic=stored_event.topic,
        reason=reason,
    )


def _aggregate_name(topic: str) -> str:
    # Our topics read "squidmesh.<Aggregate>.<Event>"; others are "module:Qual.Name".
    if topic.startswith("squidmesh."):
        return topic.split(".")[1]
    try:
        owner = resolve_topic(topic).__qualname__.split(".")[0]
    except Exception:  # noqa: BLE001 - an unknown topic still gets a readable name
        return topic
    return str(owner)
