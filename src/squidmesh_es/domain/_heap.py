"""A persistent min-heap: the queue's index of claimable work, shared by every copy.

A leftist heap made of immutable nodes: pushing and popping build O(log n) new nodes and
leave the old heap intact, so a copy of the queue shares its index in O(1) and a claim
finds the next attempt in O(log n) instead of scanning the backlog. Entries are never
removed from the middle: the queue validates each entry it reaches against its records and
pops the stale ones once they come to the top.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

__all__ = ["Entry", "Heap", "iter_sorted", "pop", "push"]


class Entry(NamedTuple):
    """One indexed attempt: ordered by due time, then by scheduling order."""

    due_at: datetime
    seq: int
    key: str


class _Node(NamedTuple):
    rank: int
    entry: Entry
    left: Heap
    right: Heap


Heap = _Node | None
"""A heap is its root node; ``None`` is the empty heap."""


def _merge(a: Heap, b: Heap) -> Heap:
    # Down the right spines while both heaps have nodes, keeping the smaller root each
    # time; then back up, building one new node per level (the left side is shared). Nodes
    # are built with ``tuple.__new__``: a NamedTuple's own ``__new__`` is a Python call.
    spine: list[_Node] = []
    while a is not None and b is not None:
        if b.entry < a.entry:
            a, b = b, a
        spine.append(a)
        a = a.right
    merged = b if a is None else a
    for node in reversed(spine):
        assert merged is not None
        left = node.left
        left_rank = left.rank if left is not None else 0
        if left_rank < merged.rank:
            merged = tuple.__new__(_Node, (left_rank + 1, node.entry, merged, left))
        else:
            merged = tuple.__new__(_Node, (merged.rank + 1, node.entry, left, merged))
    return merged


def push(heap: Heap, entry: Entry) -> Heap:
    """A heap holding ``heap``'s entries and ``entry``."""
    return _merge(heap, tuple.__new__(_Node, (1, entry, None, None)))


def pop(heap: Heap) -> Heap:
    """``heap`` without its smallest entry (the empty heap stays empty)."""
    if heap is None:
        return None
    return _merge(heap.left, heap.right)


def iter_sorted(heap: Heap) -> Iterator[Entry]:
    """The entries in order, lazily: each one costs O(log n) and ``heap`` is unchanged."""
    while heap is not None:
        yield heap.entry
        heap = _merge(heap.left, heap.right)
