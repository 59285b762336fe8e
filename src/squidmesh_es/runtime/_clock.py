"""Where time comes from: every timestamp the runtime writes is read from a ``Clock``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "ensure_aware"]


@runtime_checkable
class Clock(Protocol):
    """Tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime:
        """The current time."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """The current wall-clock time in UTC."""
        return datetime.now(UTC)


def ensure_aware(moment: datetime, *, name: str = "now") -> datetime:
    """Return ``moment`` in UTC; a naive datetime is refused rather than guessed.

    Raises:
        InvalidArgument: ``moment`` has no timezone.
    """
    from squidmesh_es.errors import InvalidArgument

    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidArgument(name, "must be a timezone-aware datetime")
    return moment.astimezone(UTC)
