"""Helpers for testing code that embeds squidmesh-es: a manual clock and freezegun support."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import DatetimeAsISO, Transcoding

__all__ = ["ManualClock", "freezegun_transcodings"]


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
