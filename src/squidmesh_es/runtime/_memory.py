"""The in-memory journal (``memory://``): the library's POPO store, with seeking reads.

``eventsourcing.popo`` answers ``select_events(id, gt=v)`` by walking every version the
aggregate ever had. A queue's history grows with every step, so loading it (which reads
the events after the cached version) cost O(history) per command: 6 ms a load after 100,000
runs. These recorders keep each aggregate's versions sorted and seek with ``bisect``, so a
read costs O(log n + events returned). Everything else is the library's.

Selected with ``PERSISTENCE_MODULE=squidmesh_es.runtime._memory`` (what ``memory://`` gives).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing import popo
from eventsourcing.persistence import AggregateRecorder, ApplicationRecorder, StoredEvent

__all__ = ["Factory", "SeekingAggregateRecorder"]


class _SeekingReads:
    """Mixin for POPO recorders: a sorted version list per aggregate, read with bisect."""

    _database_lock: Any
    _stored_events: list[StoredEvent]
    _stored_events_index: dict[str, dict[int, int]]

    def __init__(self) -> None:
        super().__init__()
        self._versions: defaultdict[str, list[int]] = defaultdict(list)

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        ids = super()._update_table(stored_events, **kwargs)  # type: ignore[misc]
        for stored in stored_events:
            insort(self._versions[str(stored.originator_id)], stored.originator_version)
        return ids

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The aggregate's events with ``gt < version <= lte``, as the library's would be."""
        with self._database_lock:
            key = str(originator_id)
            versions = self._versions.get(key, [])
            low = bisect_right(versions, gt) if gt is not None else 0
            high = bisect_right(versions, lte) if lte is not None else len(versions)
            positions = range(high - 1, low - 1, -1) if desc else range(low, high)
            if limit is not None:
                positions = positions[:limit]
            index = self._stored_events_index[key]
            return [self._stored_events[index[versions[p]]] for p in positions]

    def delete_all(self) -> None:
        """Forget every stored record (tests delete snapshots to prove they are disposable)."""
        with self._database_lock:
            self._stored_events.clear()
            self._stored_events_index.clear()
            self._versions.clear()


class SeekingAggregateRecorder(_SeekingReads, popo.POPOAggregateRecorder):
    """Snapshots."""


class _SeekingApplicationRecorder(_SeekingReads, popo.POPOApplicationRecorder):
    """Events and notifications."""


class Factory(popo.POPOFactory):  # the module's only factory: the library looks it up
    """The library's POPO factory with seeking recorders for events and snapshots."""

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """A snapshot (or event) store that seeks by version."""
        return SeekingAggregateRecorder()

    def application_recorder(self) -> ApplicationRecorder:
        """The journal's recorder: seeks by version, notifies as the library's does."""
        return _SeekingApplicationRecorder()
