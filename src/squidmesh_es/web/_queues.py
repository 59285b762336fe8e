"""What the queues page shows per queue, read from the queue aggregate's public queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from squidmesh_es.domain import AttemptStatus, DispatchQueue

__all__ = ["QueueStats", "queue_stats"]

_WAITING = (AttemptStatus.AVAILABLE, AttemptStatus.RETRY_SCHEDULED)
_FINISHED = (AttemptStatus.COMPLETED, AttemptStatus.FAILED)


@dataclass(frozen=True)
class QueueStats:
    """One queue's live attempts at ``as_of``, counted by where they stand."""

    name: str
    as_of: datetime
    depth: int
    """Live attempts: waiting, claimed, or finished and not yet applied to their run."""
    visible_now: int
    """Waiting attempts a worker may claim now."""
    scheduled_later: int
    """Waiting attempts that become visible later (retries, delays, deferred steps)."""
    in_flight: int
    """Claimed attempts whose lease still runs."""
    expired_leases: int
    """Claimed attempts whose lease ended: the next worker takes them over."""
    unapplied: int
    """Finished attempts whose result is not applied to the run yet."""
    oldest_visible_at: datetime | None
    """When the longest-waiting visible attempt became visible."""
    next_visible_at: datetime | None
    """When the next scheduled attempt becomes visible."""

    @property
    def oldest_visible_age(self) -> timedelta | None:
        """How long the oldest visible attempt has waited for a worker."""
        if self.oldest_visible_at is None:
            return None
        return self.as_of - self.oldest_visible_at


def queue_stats(partitions: Sequence[DispatchQueue], now: datetime) -> QueueStats:
    """Count a queue's attempts at ``now`` over its ``partitions`` (partition 0 first).

    One pass over the live attempts of each partition.
    """
    attempts = [a for queue in partitions for a in queue.attempts.values()]
    visible = [
        a.visible_at for queue in partitions for a in queue.claimable(now) if a.status in _WAITING
    ]
    claimed = [a for a in attempts if a.status is AttemptStatus.CLAIMED]
    expired = sum(1 for a in claimed if a.lease_until is not None and a.lease_until <= now)
    later = sum(1 for a in attempts if a.status in _WAITING and a.visible_at > now)
    upcoming = [t for queue in partitions if (t := queue.next_visible_at()) is not None]
    return QueueStats(
        name=partitions[0].queue,
        as_of=now,
        depth=len(attempts),
        visible_now=len(visible),
        scheduled_later=later,
        in_flight=len(claimed) - expired,
        expired_leases=expired,
        unapplied=sum(1 for a in attempts if a.status in _FINISHED),
        oldest_visible_at=min(visible, default=None),
        next_visible_at=min(upcoming, default=None),
    )
