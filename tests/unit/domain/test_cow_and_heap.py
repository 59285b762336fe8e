"""The queue's building blocks: copy-on-write maps, recent memories and the persistent heap."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from squidmesh_es.domain._cow import FOLD_AT, CowMap, RecentMemory
from squidmesh_es.domain._heap import Entry, iter_sorted, pop, push

T0 = datetime(2026, 1, 1, tzinfo=UTC)

map_ops = st.lists(
    st.tuples(st.sampled_from(["set", "pop", "fork"]), st.integers(0, 40), st.integers(1, 9)),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(map_ops)
def test_a_cow_map_behaves_like_a_dict_and_its_copies_never_leak(
    ops: list[tuple[str, int, int]],
) -> None:
    cow: CowMap[int, int] = CowMap()
    model: dict[int, int] = {}
    copies: list[tuple[CowMap[int, int], dict[int, int]]] = []
    for op, key, value in ops:
        if op == "set":
            cow[key] = value
            model[key] = value
        elif op == "pop":
            assert cow.pop(key) == model.pop(key, None)
        else:
            copies.append((cow.fork(), dict(model)))
        assert len(cow) == len(model)
    assert cow.to_dict() == model
    assert all(cow.get(k) == model.get(k) for k in range(41))
    for copy, expected in copies:
        assert copy.to_dict() == expected


def test_a_large_cow_map_folds_its_top_layer_and_keeps_forks_cheap() -> None:
    cow: CowMap[int, int] = CowMap({n: n for n in range(10_000)})
    for n in range(FOLD_AT * 3):
        cow[n] = -n
        cow.pop(10_000 - 1 - n)
    fork = cow.fork()
    fork[1] = 99

    assert len(fork._top) <= 2 * FOLD_AT  # a copy never duplicates the base
    assert cow.get(1) == -1 and fork.get(1) == 99
    assert len(cow) == 10_000 - FOLD_AT * 3


def test_a_recent_memory_keeps_at_least_its_limit_newest_with_their_latest_values() -> None:
    memory: RecentMemory[int, int] = RecentMemory(1000)
    for n in range(5000):
        memory[n] = n
    memory[4999] = -1
    fork = memory.fork()
    fork[4998] = -2

    assert all(n in memory for n in range(4000, 5000))
    assert 0 not in memory
    assert memory.get(4999) == -1 and memory.get(4998) == 4998 and fork.get(4998) == -2
    assert list(memory.to_dict())[-1] == 4999


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=300))
def test_the_persistent_heap_orders_entries_and_old_versions_stay_intact(
    ops: list[tuple[int, bool]],
) -> None:
    heap = None
    model: list[Entry] = []
    versions = []
    for seq, (offset, popping) in enumerate(ops):
        if popping and model:
            heap = pop(heap)
            model.remove(min(model))
        else:
            entry = Entry(T0 + timedelta(seconds=offset), seq, f"k{seq}")
            heap = push(heap, entry)
            model.append(entry)
        versions.append((heap, sorted(model)))
    for version, expected in versions:
        assert list(iter_sorted(version)) == expected


def test_the_heap_stays_shallow_under_a_large_backlog() -> None:
    heap = None
    rng = random.Random(7)
    for seq in range(50_000):
        heap = push(heap, Entry(T0 + timedelta(seconds=rng.randrange(10_000)), seq, str(seq)))
    first = [e.seq for e in iter_sorted(heap)][:5]
    assert len(first) == 5  # no recursion limit hit, in order
    spine, node = 0, heap
    while node is not None:
        spine, node = spine + 1, node.right
    assert spine <= 17  # log2(50,000): a push or pop touches this many nodes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.none() | st.integers()), max_size=400))
def test_a_recent_memory_reads_as_its_generations_read_newest_first(
    writes: list[tuple[int, int | None]],
) -> None:
    # Lookups read one merged map of the frozen generations; the answer is the scan's.
    memory: RecentMemory[int, int | None] = RecentMemory(12, generation_size=4)
    fork = memory.fork()
    for key, value in writes:
        memory[key] = value
        if key % 7 == 0:
            fork = memory.fork()
        elif key % 5 == 0:
            fork[key + 1] = value

    for remembered in (memory, fork):
        generations = (remembered._current, *remembered._older)
        for key in range(41):
            newest = next((g[key] for g in generations if g.get(key) is not None), None)
            assert remembered.get(key) == newest
            assert (key in remembered) is (newest is not None)
