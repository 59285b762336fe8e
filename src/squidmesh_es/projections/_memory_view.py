"""The projection tables in memory, for ``memory://`` journals (tests and demos).

Rows live in dicts under the library's lock, and a write checks the tracking position before
touching anything, so the in-memory view keeps the all-or-nothing rule of the SQL ones.
Queries sort on demand: this backend is for small data.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.popo import POPOTrackingRecorder

from squidmesh_es.projections._contract import CATALOG, INDEX, STATE, TABLES, Table
from squidmesh_es.projections._view import Changes, ProjectionView, Row, RunQuery

__all__ = ["MemoryProjectionView"]


class MemoryProjectionView(ProjectionView, POPOTrackingRecorder):
    """The projection tables as dicts keyed by primary key."""

    def __init__(self) -> None:
        super().__init__()
        self._tables: dict[str, dict[tuple[Any, ...], Row]] = {t.name: {} for t in TABLES}

    def create_views(self) -> None:
        """Nothing to create: the dicts exist from construction."""

    def write(self, projection: str, changes: Changes, tracking: Tracking, *, events: int) -> None:
        """Apply ``changes``, count ``events`` and move to ``tracking``, all or nothing."""
        with self._database_lock:
            self._assert_tracking_uniqueness(tracking)
            for table, rows in changes.upserts.items():
                stored = self._tables.setdefault(table.name, {})
                for row in rows:
                    key = _key(table, row)
                    if table.ddl == INDEX.ddl and key in stored:
                        continue
                    stored[key] = copy.deepcopy(row)
            for table, run_id, prefix in changes.removals:
                stored = self._tables.setdefault(table.name, {})
                for key, row in list(stored.items()):
                    if str(row["run_id"]) == run_id and str(row["key"]).startswith(prefix):
                        del stored[key]
            self._insert_tracking(tracking)
            state = self._tables[STATE.name].setdefault(
                (projection,), {c: None for c in STATE.column_names}
            )
            state.update(
                projection=projection,
                events_applied=(state["events_applied"] or 0) + events,
                error_code=None,
                error_message=None,
                error_position=None,
                failed_at=None,
            )

    def rows(
        self, table: Table, run_ids: Iterable[str], columns: Sequence[str] | None = None
    ) -> dict[str, Row]:
        """The rows of ``table`` (keyed by ``run_id``) for the given runs that exist.

        Given ``columns``, each row holds only those (and ``run_id``).
        """
        with self._database_lock:
            stored = self._tables[table.name]
            found = {i: r for i in set(run_ids) if (r := stored.get((i,))) is not None}
            if columns is not None:
                names = {"run_id", *columns}
                found = {i: {k: v for k, v in r.items() if k in names} for i, r in found.items()}
            return copy.deepcopy(found)

    def dump(self, table: Table) -> list[Row]:
        """Every row of ``table`` ordered by primary key: exports and comparisons."""
        with self._database_lock:
            stored = self._tables[table.name]
            return [copy.deepcopy(stored[k]) for k in sorted(stored)]

    def select_runs(self, query: RunQuery) -> list[Row]:
        """Catalog rows matching ``query``, newest first."""
        with self._database_lock:
            keys = {(k[0], k[1], k[2]) for k in self._tables[INDEX.name]}
            filters = query.catalog_filters()
            rows = [
                r
                for r in self._tables[CATALOG.name].values()
                if all(r[n] == v for n, v in filters.items())
                and all((k, v, r["run_id"]) in keys for k, v in query.index)
                and (query.after is None or (r["started_at"], r["run_id"]) < query.after)
            ]
            rows.sort(key=lambda r: (r["started_at"], r["run_id"]), reverse=True)
            return [copy.deepcopy(r) for r in rows[: query.limit]]

    def state(self, projection: str) -> Row | None:
        """The bookkeeping row of ``projection``, if it ever wrote or failed."""
        with self._database_lock:
            row = self._tables[STATE.name].get((projection,))
            return None if row is None else dict(row)

    def record_error(
        self, projection: str, *, code: str, message: str, position: int | None, at: datetime
    ) -> None:
        """Remember why ``projection`` stopped; the next successful write clears it."""
        with self._database_lock:
            state = self._tables[STATE.name].setdefault(
                (projection,), {c: None for c in STATE.column_names}
            )
            state.update(
                projection=projection,
                events_applied=state["events_applied"] or 0,
                error_code=code,
                error_message=message,
                error_position=position,
                failed_at=at,
            )

    def prepare_beside(self, projection: str, tables: Sequence[Table]) -> None:
        """Create ``tables`` empty (dropping leftovers) and forget ``projection``'s position."""
        with self._database_lock:
            for table in tables:
                self._tables[table.name] = {}
            self._tables[STATE.name].pop((projection,), None)
            self._max_tracking_ids.pop(projection, None)

    def switch(self, projection: str, rebuilt: str, tables: Sequence[tuple[Table, Table]]) -> bool:
        """Put each rebuilt table in place of its live one, if the rebuild is not behind."""
        with self._database_lock:
            new = self._max_tracking_ids.get(rebuilt) or 0
            if new < (self._max_tracking_ids.get(projection) or 0):
                return False
            for live_table, rebuilt_table in tables:
                self._tables[live_table.name] = self._tables.pop(rebuilt_table.name)
            self._max_tracking_ids.pop(rebuilt, None)
            self._max_tracking_ids.pop(projection, None)
            if new:
                self._max_tracking_ids[projection] = new
            state = self._tables[STATE.name]
            state.pop((projection,), None)
            moved = state.pop((rebuilt,), None)
            if moved is not None:
                state[(projection,)] = {**moved, "projection": projection}
            return True

    def close(self) -> None:
        """Nothing to release."""


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[n] for n in table.primary_key)
