"""The dispatch notifier: a live hint to workers that an attempt was scheduled.

Hints are optional and never the source of truth. The runtime calls the notifier only after
the scheduling commit, a failing notifier never undoes scheduling, and a successful hint is
recorded as ``LiveWakeupEmitted`` so inspection shows which attempts were announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["DispatchNotifier", "ScheduledAttempt"]


@dataclass(frozen=True, slots=True)
class ScheduledAttempt:
    """What a notifier learns about a scheduled attempt: never its input or any claim data."""

    run_id: str
    runnable_key: str
    queue: str
    visible_at: datetime


class DispatchNotifier(Protocol):
    """A host's live-wakeup channel (Postgres NOTIFY, Redis publish, an in-process event...)."""

    def notify_attempt_scheduled(self, attempt: ScheduledAttempt) -> None:
        """Send the hint; raise to report that it did not go out."""
        ...
