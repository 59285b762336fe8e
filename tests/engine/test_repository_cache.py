"""The repository's cache keeps each queue's partition 0 and the worker registry while runs
and other partitions come and go: a worker on a large backlog loads more runs than the
cache holds."""

from __future__ import annotations

from datetime import timedelta

from squidmesh_es import SquidMesh
from squidmesh_es.domain import REGISTRY_ID, DispatchQueue, queue_id
from squidmesh_es.runtime._cache import RunsEvictedFirst
from squidmesh_es.runtime._presence import load_registry, record_presence

from conftest import OpenMesh
from engine_workflows import Quick


def test_runs_loaded_past_the_cache_size_do_not_push_out_the_queue(mesh: SquidMesh) -> None:
    cache = mesh.repository.cache
    assert isinstance(cache, RunsEvictedFirst)
    run_ids = mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(cache.maxsize + 50)])
    assert mesh.execute_next(owner_id="w") is not None
    for run_id in run_ids:
        mesh.get_run(run_id)

    assert isinstance(cache.get(queue_id(mesh.default_queue)), DispatchQueue)
    assert len(cache.cache) == cache.maxsize  # runs: bounded, the oldest evicted
    assert mesh.get_run(run_ids[-1]).id == run_ids[-1]
    try:
        cache.get(run_ids[0])
    except KeyError:
        pass
    else:
        raise AssertionError("the least recently used run should have been evicted")


def test_an_evicted_queue_is_loaded_again_from_the_journal(mesh: SquidMesh) -> None:
    mesh.start(Quick, {"order_id": "o1"})
    cache = mesh.repository.cache
    assert isinstance(cache, RunsEvictedFirst)
    key = queue_id(mesh.default_queue)
    version = mesh.get_queue().version

    evicted = cache.get(key, evict=True)

    assert evicted.version == version and key not in cache.kept
    assert mesh.get_queue().version == version
    assert key in cache.kept
    record_presence(
        mesh, "w", "started", queues=[mesh.default_queue], lease_for=timedelta(seconds=30)
    )
    load_registry(mesh, now=mesh.now())
    assert REGISTRY_ID in cache.kept


def test_only_a_queue_s_partition_0_is_kept_the_others_stay_in_the_lru(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh(queue_partitions=2)
    mesh.start_many(Quick, [{"order_id": f"o{i}"} for i in range(8)])
    cache = mesh.repository.cache
    assert isinstance(cache, RunsEvictedFirst)

    head, other = (mesh.get_queue(p) for p in mesh.queue_partitions_of())

    assert head.id in cache.kept and other.id not in cache.kept
    assert other.id in cache.cache
