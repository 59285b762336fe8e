"""Who works on the journal: the presence of worker processes, as facts.

One registry per journal. Workers record that they started, that they are still there
(about every `PRESENCE_INTERVAL`) and that they stopped; an operator records that a silent
one was released. It is an aggregate rather than a side table so that it needs no DDL on any
backend, commits like everything else, and keeps who ran when and who released whom as
history. Its state is bounded: only the newest `KEPT_GONE` workers that left are kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, final
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from eventsourcing.utils import register_topic

from squidmesh_es.domain._journal import AnomalyLog, JSONDict
from squidmesh_es.domain._keys import JOURNAL_NAMESPACE
from squidmesh_es.errors import InvalidArgument

__all__ = ["PRESENCE_INTERVAL", "REGISTRY_ID", "WorkerRegistry"]

REGISTRY_ID: Final[UUID] = uuid5(JOURNAL_NAMESPACE, "squidmesh:workers")
"""Aggregate id of the journal's one `WorkerRegistry`."""

PRESENCE_INTERVAL: Final = timedelta(seconds=15)
"""How often a running worker records that it is still there."""

KEPT_GONE: Final = 100
"""Stopped or released workers kept in the state, newest first."""


@final
class WorkerRegistry(AnomalyLog, Aggregate):
    """The worker processes of one journal: who started, when each was last seen, who left."""

    TOPIC = "squidmesh.WorkerRegistry"
    MUTABLE_RECORDS = ("workers",)

    if TYPE_CHECKING:  # state set by events; annotations here would become __init__ args
        workers: dict[str, JSONDict]

    class Event(Aggregate.Event):
        """Base of the registry's events."""

    class Opened(Event, Aggregate.Created):
        """The registry begins."""

        TOPIC = "squidmesh.WorkerRegistry.Opened"

        def apply(self, registry: WorkerRegistry) -> None:
            registry.workers = {}
            registry.anomalies = []
            registry.anomaly_count = 0

    class WorkerStarted(Event):
        """A worker process began pulling from ``queues``."""

        TOPIC = "squidmesh.WorkerRegistry.WorkerStarted"
        owner_id: str
        queues: list[str]
        host: str
        pid: int
        lease_seconds: float

        def apply(self, registry: WorkerRegistry) -> None:
            registry.workers[self.owner_id] = {
                "owner_id": self.owner_id,
                "queues": list(self.queues),
                "host": self.host,
                "pid": self.pid,
                "lease_seconds": self.lease_seconds,
                "started_at": self.timestamp,
                "seen_at": self.timestamp,
                "state": "running",
                "left_at": None,
                "released_by": None,
            }

    class WorkerSeen(Event):
        """The worker is still there."""

        TOPIC = "squidmesh.WorkerRegistry.WorkerSeen"
        owner_id: str

        def apply(self, registry: WorkerRegistry) -> None:
            record = registry.workers.get(self.owner_id)
            if record is not None:
                record["seen_at"] = self.timestamp
                record["state"] = "running"  # a released worker that was alive after all

    class WorkerStopped(Event):
        """The worker stopped gracefully: its steps in hand were settled."""

        TOPIC = "squidmesh.WorkerRegistry.WorkerStopped"
        owner_id: str

        def apply(self, registry: WorkerRegistry) -> None:
            registry.leave(self.owner_id, "stopped", self.timestamp, None)

    class WorkerReleased(Event):
        """An operator released the worker's claims; ``released`` counts them per queue."""

        TOPIC = "squidmesh.WorkerRegistry.WorkerReleased"
        owner_id: str
        actor: str | None
        released: dict[str, int]

        def apply(self, registry: WorkerRegistry) -> None:
            registry.leave(self.owner_id, "released", self.timestamp, self.actor)

    Created = Opened

    class Snapshot(LibrarySnapshot):
        """Checkpoint of the registry; disposable."""

        TOPIC = "squidmesh.WorkerRegistry.Snapshot"

    @classmethod
    def open(cls, *, now: datetime) -> WorkerRegistry:
        """Begin the journal's registry."""
        return cls._create(cls.Opened, id=REGISTRY_ID, timestamp=now)

    def leave(self, owner_id: str, state: str, at: datetime, actor: str | None) -> None:
        """Mark the worker gone, and forget the oldest gone ones past `KEPT_GONE`."""
        record = self.workers.get(owner_id)
        if record is None:
            return
        record.update(state=state, left_at=at, released_by=actor)
        gone = sorted(
            (r for r in self.workers.values() if r["left_at"] is not None),
            key=lambda r: r["left_at"],
        )
        for old in gone[: max(0, len(gone) - KEPT_GONE)]:
            del self.workers[old["owner_id"]]

    # -- commands -------------------------------------------------------------------------

    def start(
        self,
        owner_id: str,
        *,
        queues: list[str],
        host: str,
        pid: int,
        lease_for: timedelta,
        now: datetime,
    ) -> None:
        """Record that ``owner_id`` began working on ``queues``.

        Raises:
            InvalidArgument: ``owner_id`` is empty.
        """
        if not owner_id.strip():
            raise InvalidArgument("owner_id", "must be a non-empty string")
        self.trigger_event(
            self.WorkerStarted,
            owner_id=owner_id,
            queues=list(queues),
            host=host,
            pid=pid,
            lease_seconds=lease_for.total_seconds(),
            timestamp=now,
        )

    def seen(self, owner_id: str, *, now: datetime) -> None:
        """Record that ``owner_id`` is still there (nothing for a worker never started)."""
        if owner_id in self.workers:
            self.trigger_event(self.WorkerSeen, owner_id=owner_id, timestamp=now)

    def stop(self, owner_id: str, *, now: datetime) -> None:
        """Record that ``owner_id`` stopped (nothing for a worker never started)."""
        if owner_id in self.workers:
            self.trigger_event(self.WorkerStopped, owner_id=owner_id, timestamp=now)

    def release(
        self, owner_id: str, *, actor: str | None, released: dict[str, int], now: datetime
    ) -> None:
        """Record an operator's release of ``owner_id`` and how many claims it ended."""
        self.trigger_event(
            self.WorkerReleased,
            owner_id=owner_id,
            actor=actor,
            released=dict(released),
            timestamp=now,
        )


register_topic(WorkerRegistry.Snapshot.TOPIC, WorkerRegistry.Snapshot)
