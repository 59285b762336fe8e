"""Step deadlines as read at a given time: on time, due soon, overdue or escalated.

The engine persists due times on runnables; status is never stored, because it changes with
the clock alone. Malformed deadline data is skipped rather than failing the read: a deadline
is inspection evidence, and a bad one must not hide the rest of the run.
"""

from __future__ import annotations

from datetime import datetime

from squidmesh_es.read_model._json import ReadModel
from squidmesh_es.read_model._vocab import DeadlineStatus

__all__ = ["DeadlineView", "read_deadline"]


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
    if now >= due_at:
        status = DeadlineStatus.ESCALATED if escalation else DeadlineStatus.OVERDUE
    elif due_soon_at is not None and now >= due_soon_at:
        status = DeadlineStatus.DUE_SOON
    else:
        status = DeadlineStatus.ON_TIME
    return DeadlineView(
        step=step,
        runnable_key=runnable_key,
        scheduled_at=_as_datetime(raw.get("scheduled_at")),
        due_at=due_at,
        due_soon_at=due_soon_at,
        escalation=escalation,
        status=status,
    )
