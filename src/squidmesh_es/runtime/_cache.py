"""The repository's cache: runs and partitions come and go, the queues' heads stay.

The library keeps loaded aggregates in one LRU cache (`AGGREGATE_CACHE_MAXSIZE` entries).
A worker on a large backlog loads hundreds of different runs a second, and they pushed out
partition 0 of each queue, which every process reads once a second for the partition count
(`SquidMesh.queue_partitions_of`) and which, on a grown queue, is a full partition no
worker otherwise touches: each read rebuilt it from its snapshot (megabytes) and the events
after it, a sixth of a worker's time at 100,000 queued runs on SQLite. Partition 0 of each
queue and the worker registry are kept for the process's life; runs and the other
partitions stay in the bounded LRU (keeping every partition too made the collector's walks
longer than the reloads it saved, on the memory backend).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import LRUCache

from squidmesh_es.domain import DispatchQueue, WorkerRegistry

__all__ = ["RunsEvictedFirst"]


def _kept(value: Any) -> bool:
    """A queue's partition 0 (its head, which records the count) or the worker registry."""
    if isinstance(value, DispatchQueue):
        return "#" not in value.queue
    return isinstance(value, WorkerRegistry)


class RunsEvictedFirst(LRUCache[UUID, Any]):
    """An LRU cache beside a map of the aggregates it never evicts (see `_kept`)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.kept: dict[UUID, Any] = {}

    def get(self, key: UUID, *, evict: bool = False) -> Any:
        """The cached aggregate (removed with ``evict``); `KeyError` when not cached."""
        with self.lock:
            if key in self.kept:
                return self.kept.pop(key) if evict else self.kept[key]
        return super().get(key, evict=evict)

    def put(self, key: UUID, value: Any | None) -> Any | None:
        """Cache ``value``: kept if `_kept`, else in the LRU."""
        if _kept(value):
            with self.lock:
                self.kept[key] = value
            return None
        return super().put(key, value)
