"""Worker presence: recording it, listing live workers, and releasing a dead one's claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from eventsourcing.application import AggregateNotFoundError

from squidmesh_es.domain import PRESENCE_INTERVAL, REGISTRY_ID, WorkerRegistry
from squidmesh_es.errors import Conflict, InvalidArgument
from squidmesh_es.runtime._execution import CONFLICT_RETRIES, check_owner

if TYPE_CHECKING:
    from squidmesh_es.runtime._app import SquidMesh

__all__ = [
    "SILENT_AFTER",
    "ReleaseReport",
    "WorkerInfo",
    "list_workers",
    "load_registry",
    "record_presence",
    "release_worker",
    "worker_rank",
]

SILENT_AFTER = 3 * PRESENCE_INTERVAL
"""A running worker not seen for this long is reported ``silent``: probably dead."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker process as the registry knows it."""

    owner_id: str
    status: str
    """``live`` (seen lately), ``silent`` (running but not seen for `SILENT_AFTER`: likely
    dead), ``stopped`` (left gracefully) or ``released`` (an operator released it)."""
    queues: list[str]
    host: str
    pid: int
    lease_seconds: float
    started_at: datetime
    seen_at: datetime
    left_at: datetime | None
    released_by: str | None
    claims: int
    """Attempts it holds under a running lease, on its queues, now."""


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    """What `release_worker` did: the claims it ended, per queue."""

    owner_id: str
    released: dict[str, list[str]]
    """Runnable keys whose lease was ended, by queue; each may be claimed again at once."""

    @property
    def count(self) -> int:
        """How many claims were released."""
        return sum(len(keys) for keys in self.released.values())


def load_registry(mesh: SquidMesh, *, now: datetime) -> WorkerRegistry:
    """The journal's worker registry, or a new unsaved one."""
    try:
        registry: Any = mesh.repository.get(REGISTRY_ID)
    except AggregateNotFoundError:
        return WorkerRegistry.open(now=now)
    assert isinstance(registry, WorkerRegistry)
    return registry


def record_presence(
    mesh: SquidMesh,
    owner_id: str,
    change: str,
    *,
    queues: list[str] | None = None,
    host: str = "",
    pid: int = 0,
    lease_for: timedelta | None = None,
) -> None:
    """Record that the worker ``started``, was ``seen`` or ``stopped``.

    Raises:
        Conflict: the registry kept moving for every retry.
        StorageUnavailable: the database could not be reached.
    """
    for _ in range(CONFLICT_RETRIES):
        now = mesh.now()
        registry = load_registry(mesh, now=now)
        if change == "started" or (change == "seen" and owner_id not in registry.workers):
            # A worker whose start could not be recorded (database down) registers late.
            assert queues is not None and lease_for is not None
            registry.start(
                owner_id, queues=queues, host=host, pid=pid, lease_for=lease_for, now=now
            )
        elif change == "seen":
            registry.seen(owner_id, now=now)
        else:
            registry.stop(owner_id, now=now)
        if not registry.pending_events:
            return
        try:
            mesh.save(registry)
        except Conflict:
            continue
        return
    raise Conflict("worker registry kept moving", owner_id=owner_id)


def worker_rank(registry: WorkerRegistry, owner_id: str, *, now: datetime) -> tuple[int, int]:
    """``owner_id``'s place among the live workers, oldest first, and how many are live.

    Workers claim first from the partitions of their rank, so live workers spread over a
    queue's partitions instead of racing for the same one. A worker not listed (its start
    not recorded yet) counts as the last of them.
    """
    live = sorted(
        (record["started_at"], record["owner_id"])
        for record in registry.workers.values()
        if record["state"] == "running" and now - record["seen_at"] < SILENT_AFTER
    )
    owners = [owner for _, owner in live]
    if owner_id not in owners:
        return len(owners), len(owners) + 1
    return owners.index(owner_id), len(owners)


def list_workers(mesh: SquidMesh, *, now: datetime, include_gone: bool) -> list[WorkerInfo]:
    """Workers of the journal, newest first; with ``include_gone``, those that left too."""
    registry = load_registry(mesh, now=now)
    infos = []
    for record in registry.workers.values():
        if record["left_at"] is not None and not include_gone:
            continue
        status = record["state"]
        if status == "running":
            status = "live" if now - record["seen_at"] < SILENT_AFTER else "silent"
        queues = list(record["queues"])
        claims = sum(
            len(mesh.get_queue(partition).held_by(record["owner_id"], now))
            for q in queues
            for partition in mesh.queue_partitions_of(q)
        )
        infos.append(
            WorkerInfo(
                owner_id=record["owner_id"],
                status=status,
                queues=queues,
                host=record["host"],
                pid=record["pid"],
                lease_seconds=record["lease_seconds"],
                started_at=record["started_at"],
                seen_at=record["seen_at"],
                left_at=record["left_at"],
                released_by=record["released_by"],
                claims=claims,
            )
        )
    return sorted(infos, key=lambda i: i.started_at, reverse=True)


def release_worker(
    mesh: SquidMesh,
    owner_id: str,
    *,
    queues: list[str] | None,
    actor: str | None,
    now: datetime,
) -> ReleaseReport:
    """End every running lease of ``owner_id`` now, so its attempts are redelivered at once.

    The queues are ``queues`` if given, else those the registry recorded for the worker.
    Each queue commits on its own (with the registry's record last); running it again
    releases what is left and writes nothing when nothing is.

    Raises:
        InvalidArgument: ``owner_id`` is empty, or unknown to the registry and no
            ``queues`` were given.
    """
    check_owner(owner_id)
    registry = load_registry(mesh, now=now)
    record = registry.workers.get(owner_id)
    if queues is None:
        if record is None:
            raise InvalidArgument(
                "owner_id", "no worker with this id is registered; name its queues"
            )
        queues = list(record["queues"])
    released: dict[str, list[str]] = {}
    for name in queues:
        for partition in mesh.queue_partitions_of(name):
            keys = _release_on(mesh, partition, owner_id, now=now)
            if keys:
                released.setdefault(name, []).extend(keys)
    for _ in range(CONFLICT_RETRIES):
        registry = load_registry(mesh, now=now)
        if owner_id not in registry.workers and not released:
            break
        registry.release(
            owner_id,
            actor=actor,
            released={q: len(k) for q, k in released.items()},
            now=now,
        )
        try:
            mesh.save(registry)
        except Conflict:
            continue
        break
    return ReleaseReport(owner_id, released)


def _release_on(mesh: SquidMesh, partition: str, owner_id: str, *, now: datetime) -> list[str]:
    """End ``owner_id``'s leases on one queue partition in one commit; the keys released."""
    for _ in range(CONFLICT_RETRIES):
        queue = mesh.get_queue(partition, now=now)
        keys = queue.release_owner(owner_id, now=now)
        if not keys:
            return []
        try:
            mesh.save(queue)
        except Conflict:
            continue
        return keys
    raise Conflict("queue kept moving while releasing claims", queue=partition)
