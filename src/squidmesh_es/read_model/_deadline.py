"""Step deadlines as read at a given time: on time, due soon, overdue or escalated.

The engine persists due times on runnables; status is never stored, because it changes with
the clock alone. Malformed deadline data is skipped rather than failing the read: a deadline
is inspection evidence, and a bad one must not hide the rest of the run.
"""

from __future__ import annotations

from datetime import datetime

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model._json import ReadModel
from squidmesh_es.read_model._vocab import DeadlineStatus

__all__ = ["DeadlineView", "read_deadline", "require_aware"]


def require_aware(now: datetime) -> datetime:
    """Return ``now`` if it carries a time zone.

    Journal times are aware; comparing them with a naive ``now`` would raise ``TypeError``
    deep inside a builder, or worse, pass by accident in one zone.

    Raises:
        InvalidArgument: ``now`` is naive.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now", "must be a timezone-aware datetime")
    return now


class DeadlineView(ReadModel):
    """One open step deadline and its status at the snapshot's time."""

    step: str
    runnable_key: str | None
    """The runnable that carries it; ``None`` for a manual boundary's own deadline."""
    scheduled_at: datetime | None
    due_at: datetime
    due_soon_at: datetime | None
    escalation: str | None
    status: DeadlineStatus

    def at(self, now: datetime) -> DeadlineView:
        """The same deadline with its status evaluated at ``now`` instead."""
        status = _status(self.due_at, self.due_soon_at, self.escalation, now)
        return self.model_copy(update={"status": status})


def _status(
    due_at: datetime, due_soon_at: datetime | None, escalation: str | None, now: datetime
) -> DeadlineStatus:
    if now >= due_at:
        return DeadlineStatus.ESCALATED if escalation else DeadlineStatus.OVERDUE
    if due_soon_at is not None and now >= due_soon_at:
        return DeadlineStatus.DUE_SOON
    return DeadlineStatus.ON_TIME


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def read_deadline(
    raw: object, *, step: str, runnable_key: str | None, now: datetime
) -> DeadlineView | None:
    """The deadline in ``raw`` (``{scheduled_at, due_at, due_soon_at?, escalation?}``) at ``now``.

    Returns ``None`` when ``raw`` has no readable ``due_at``. A time exactly at ``due_at`` is
    overdue, as a lease ending exactly at ``now`` is expired.
    """
    if not isinstance(raw, dict):
        return None
    due_at = _as_datetime(raw.get("due_at"))
    if due_at is None:
        return None
    due_soon_at = _as_datetime(raw.get("due_soon_at"))
    escalation = raw.get("escalation")
    escalation = escalation if isinstance(escalation, str) else None
    return DeadlineView(
        step=step,
        runnable_key=runnable_key,
        scheduled_at=_as_datetime(raw.get("scheduled_at")),
        due_at=due_at,
        due_soon_at=due_soon_at,
        escalation=escalation,
        status=_status(due_at, due_soon_at, escalation, now),
    )
