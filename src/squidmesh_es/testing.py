"""Helpers for testing code that embeds squidmesh-es: a manual clock and freezegun support."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, Transcoding
from eventsourcing.popo import POPOAggregateRecorder
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from squidmesh_es.runtime import SquidMesh
from squidmesh_es.runtime._memory import SeekingAggregateRecorder

__all__ = ["ManualClock", "delete_snapshots", "freezegun_transcodings"]


class ManualClock:
    """A clock that moves only when told to; safe to share between threads."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment``."""
        with self._lock:
            self._now = moment


def freezegun_transcodings() -> list[Transcoding]:
    """Transcodings that store freezegun's ``FakeDatetime`` exactly like ``datetime``.

    Pass them to ``SquidMesh.open(..., transcodings=...)`` in tests that freeze time.
    """
    from freezegun.api import FakeDatetime

    class FakeDatetimeAsISO(DatetimeAsISO):
        type = FakeDatetime

    return [FakeDatetimeAsISO()]


def delete_snapshots(mesh: SquidMesh) -> None:
    """Delete every stored snapshot of ``mesh``.

    Snapshots are disposable checkpoints: after this, loads replay events and must give the
    same state. (An aggregate already in the in-process cache is only fast-forwarded.)
    """
    store = mesh.snapshots
    if store is None:
        return
    recorder: Any = store.recorder
    if isinstance(recorder, SeekingAggregateRecorder):
        recorder.delete_all()
    elif isinstance(recorder, POPOAggregateRecorder):
        with recorder._database_lock:
            recorder._stored_events.clear()
            recorder._stored_events_index.clear()
    elif isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {recorder.events_table_name}")
    elif isinstance(recorder, PostgresAggregateRecorder):
        from psycopg import sql

        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL("DELETE FROM {}.{}").format(
                    sql.Identifier(recorder.datastore.schema),
                    sql.Identifier(recorder.events_table_name),
                )
            )
    else:  # pragma: no cover - a host's own recorder
        raise TypeError(f"cannot delete snapshots from {type(recorder).__name__}")
