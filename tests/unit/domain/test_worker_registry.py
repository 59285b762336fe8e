"""The worker registry: who started, was seen, stopped or was released; bounded state."""

from __future__ import annotations

from datetime import timedelta

from squidmesh_es.domain import WorkerRegistry
from squidmesh_es.domain._workers import KEPT_GONE

from domain_builders import LEASE, T0


def started(registry: WorkerRegistry, owner: str, *, at: timedelta = timedelta(0)) -> None:
    registry.start(owner, queues=["default"], host="h", pid=7, lease_for=LEASE, now=T0 + at)


def test_a_started_worker_is_running_and_seen_moves_its_last_sighting() -> None:
    registry = WorkerRegistry.open(now=T0)
    started(registry, "w1")

    registry.seen("w1", now=T0 + timedelta(seconds=15))

    record = registry.workers["w1"]
    assert (record["state"], record["seen_at"], record["queues"]) == (
        "running",
        T0 + timedelta(seconds=15),
        ["default"],
    )
    assert record["lease_seconds"] == LEASE.total_seconds()


def test_stopped_and_released_workers_are_gone_with_who_released_them() -> None:
    registry = WorkerRegistry.open(now=T0)
    started(registry, "w1")
    started(registry, "w2")

    registry.stop("w1", now=T0)
    registry.release("w2", actor="ops", released={"default": 2}, now=T0)

    assert registry.workers["w1"]["state"] == "stopped"
    assert (registry.workers["w2"]["state"], registry.workers["w2"]["released_by"]) == (
        "released",
        "ops",
    )


def test_presence_of_a_worker_never_started_writes_nothing() -> None:
    registry = WorkerRegistry.open(now=T0)
    registry.collect_events()

    registry.seen("ghost", now=T0)
    registry.stop("ghost", now=T0)

    assert registry.pending_events == []


def test_only_the_newest_gone_workers_are_kept() -> None:
    registry = WorkerRegistry.open(now=T0)
    for n in range(KEPT_GONE + 5):
        started(registry, f"w{n}", at=timedelta(seconds=n))
        registry.stop(f"w{n}", now=T0 + timedelta(seconds=n))
    started(registry, "alive")

    assert len(registry.workers) == KEPT_GONE + 1
    assert "w0" not in registry.workers and "alive" in registry.workers
