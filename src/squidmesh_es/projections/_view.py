"""What every projection store offers: rows and tracking written together, and the queries.

A view is a library ``TrackingRecorder`` that also holds the projection tables, so the rows a
follower derives from a batch of events and the tracking position after that batch commit in
one transaction: an event is counted once or not at all. One view holds all three
projections; each tracks its own position under its own name, so one can stop while the
others go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking, TrackingRecorder

from squidmesh_es.projections._contract import Table

__all__ = ["Changes", "ProjectionView", "Row", "RunQuery"]

Row = dict[str, Any]
"""One table row: run ids as ``str``, times as aware UTC ``datetime``, JSON as Python values."""


@dataclass
class Changes:
    """Rows a batch of events produced: upserted by primary key, table by table.

    ``removals`` are applied after the upserts: ``(table, run_id, key_prefix)`` deletes the
    run's rows whose ``key`` starts with the prefix (a forgotten run's payload-derived
    index entries).
    """

    upserts: dict[Table, list[Row]] = field(default_factory=dict)
    removals: list[tuple[Table, str, str]] = field(default_factory=list)

    def add(self, table: Table, row: Row) -> None:
        """Upsert ``row`` into ``table`` when the batch commits."""
        self.upserts.setdefault(table, []).append(row)

    def remove_keys(self, table: Table, run_id: str, prefix: str) -> None:
        """Delete ``run_id``'s rows of ``table`` whose ``key`` starts with ``prefix``."""
        self.removals.append((table, run_id, prefix))


@dataclass(frozen=True)
class RunQuery:
    """A catalog query: equality filters, index lookups, and the keyset to start after."""

    limit: int
    workflow: str | None = None
    status: str | None = None
    queue: str | None = None
    trigger: str | None = None
    parent_run_id: str | None = None
    index: tuple[tuple[str, str], ...] = ()
    """``(key, value)`` pairs the run must all have in the run index."""
    after: tuple[datetime, str] | None = None
    """``(started_at, run_id)`` of the last row of the previous page."""

    def catalog_filters(self) -> dict[str, str]:
        """The equality filters on catalog columns that are set."""
        filters = {
            "workflow": self.workflow,
            "status": self.status,
            "queue": self.queue,
            "trigger": self.trigger,
            "parent_run_id": self.parent_run_id,
        }
        return {k: v for k, v in filters.items() if v is not None}


class ProjectionView(TrackingRecorder, ABC):
    """The store of the projection tables and of the library's tracking rows."""

    @abstractmethod
    def create_views(self) -> None:
        """Create the projection tables from the contract DDL when missing."""

    @abstractmethod
    def write(self, projection: str, changes: Changes, tracking: Tracking, *, events: int) -> None:
        """Apply ``changes``, count ``events`` and move ``projection`` to ``tracking``, atomically.

        Raises:
            eventsourcing.persistence.IntegrityError: ``tracking`` is not past the
                projection's position; nothing was written.
        """

    def position(self, projection: str) -> int | None:
        """The last notification id ``projection`` applied; ``None`` before the first."""
        return self.max_tracking_id(projection)

    @abstractmethod
    def rows(
        self, table: Table, run_ids: Iterable[str], columns: Sequence[str] | None = None
    ) -> dict[str, Row]:
        """The rows of ``table`` (keyed by ``run_id``) for the given runs that exist.

        Given ``columns``, each row holds only those (and ``run_id``).
        """

    @abstractmethod
    def dump(self, table: Table) -> list[Row]:
        """Every row of ``table`` ordered by primary key: exports and comparisons."""

    @abstractmethod
    def select_runs(self, query: RunQuery) -> list[Row]:
        """Catalog rows matching ``query``, newest first, at most ``query.limit``."""

    @abstractmethod
    def state(self, projection: str) -> Row | None:
        """The bookkeeping row of ``projection``, if it ever wrote or failed."""

    @abstractmethod
    def record_error(
        self, projection: str, *, code: str, message: str, position: int | None, at: datetime
    ) -> None:
        """Remember why ``projection`` stopped; the next successful write clears it."""

    @abstractmethod
    def prepare_beside(self, projection: str, tables: Sequence[Table]) -> None:
        """Create ``tables`` empty (dropping leftovers) and forget ``projection``'s position.

        ``projection`` and ``tables`` are a projection's rebuild name and tables
        (``RunProjection.beside``); the live ones are not touched.
        """

    @abstractmethod
    def switch(self, projection: str, rebuilt: str, tables: Sequence[tuple[Table, Table]]) -> bool:
        """Put each rebuilt table in place of its live one, if the rebuild is not behind.

        In one transaction that holds off every follower's write: unless ``rebuilt``'s
        position is behind ``projection``'s (a live follower moved on meanwhile: catch up
        and try again), each ``(live, rebuilt)`` pair's rebuilt table replaces the live
        one, and ``projection`` takes ``rebuilt``'s position and event count. Readers see
        the old tables until the commit and the new ones after it, never an empty one.
        Returns whether it switched.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def by_run_id(rows: Iterable[Mapping[str, Any]]) -> dict[str, Row]:
    """Rows keyed by their ``run_id``."""
    return {str(r["run_id"]): dict(r) for r in rows}
