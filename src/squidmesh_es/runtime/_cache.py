"""The repository's cache: runs come and go, queues and the worker registry stay.

The library keeps loaded aggregates in one LRU cache (`AGGREGATE_CACHE_MAXSIZE` entries).
A worker on a large backlog loads hundreds of different runs a second, and they pushed out
the queue partitions it visits less often; the next load of such a partition rebuilt it
from its snapshot (megabytes at a few thousand live attempts) and the events after it, a
sixth of a worker's time at 100,000 queued runs. Queue partitions and the worker registry
are few (at most 256 partitions a queue) and read again and again, so they are kept for
the process's life; runs stay in the bounded LRU.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import LRUCache

from squidmesh_es.domain import DispatchQueue, WorkerRegistry

__all__ = ["RunsEvictedFirst"]

KEPT = (DispatchQueue, WorkerRegistry)
"""Aggregates never evicted: few, and read on every claim or layout refresh."""


class RunsEvictedFirst(LRUCache[UUID, Any]):
    """An LRU cache of runs, beside a map of the queues and registries it never evicts."""

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
        """Cache ``value``: kept if it is a queue or a registry, else in the LRU."""
        if isinstance(value, KEPT):
            with self.lock:
                self.kept[key] = value
            return None
        return super().put(key, value)
