"""Copy-on-write containers: copying an aggregate costs O(sqrt n) at most, not O(n).

The repository hands every command its own copy of the cached aggregate. A queue holding a
backlog of 100,000 attempts cannot be copied on every claim, so its large maps are layered:
a frozen base dict, shared by every copy and never changed, under a small top layer that
each copy owns. A copy duplicates only the top layer; when a top layer outgrows
``FOLD_AT`` (more for a larger base) it is folded into a new base.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["CowMap", "RecentMemory"]

K = TypeVar("K")
V = TypeVar("V")

FOLD_AT = 256
"""Smallest top-layer size at which the layers are folded into a new shared base.

A larger base folds later (at ``4 * sqrt(len(base))`` changes), balancing the O(top) copy
of every load against the O(n) fold: both stay near O(sqrt n) per change.
"""


class _Gone:
    """Marks a key removed in the top layer while the base still holds it."""


_GONE = _Gone()


class CowMap(Generic[K, V]):
    """A mapping whose copies share all but their most recent changes."""

    __slots__ = ("_base", "_size", "_top")

    def __init__(self, items: dict[K, V] | None = None) -> None:
        self._base: dict[K, V] = dict(items or {})
        self._top: dict[K, V | _Gone] = {}
        self._size = len(self._base)

    def fork(self) -> CowMap[K, V]:
        """An independent copy: O(size of the top layer)."""
        clone: CowMap[K, V] = CowMap.__new__(CowMap)
        clone._base = self._base
        clone._top = dict(self._top)
        clone._size = self._size
        return clone

    def get(self, key: K) -> V | None:
        """The value under ``key``, or ``None``."""
        value = self._top.get(key, None)
        if value is None:
            return self._base.get(key)
        return None if isinstance(value, _Gone) else value

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        if key not in self:
            self._size += 1
        self._top[key] = value
        self._fold_if_large()

    def pop(self, key: K) -> V | None:
        """Remove ``key``; returns its value, or ``None`` when it was absent."""
        value = self.get(key)
        if value is None:
            return None
        if key in self._base:
            self._top[key] = _GONE
        else:
            del self._top[key]
        self._size -= 1
        self._fold_if_large()
        return value

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[K]:
        for key, _ in self.items():
            yield key

    def items(self) -> Iterator[tuple[K, V]]:
        """Every live entry: the base's first, then the top layer's."""
        top = self._top
        for key, value in self._base.items():
            if key not in top:
                yield key, value
        for key, shadow in top.items():
            if not isinstance(shadow, _Gone):
                yield key, shadow

    def values(self) -> Iterator[V]:
        """Every live value."""
        for _, value in self.items():
            yield value

    def to_dict(self) -> dict[K, V]:
        """A plain dict of the live entries (for snapshots and tests)."""
        return dict(self.items())

    def _fold_if_large(self) -> None:
        top = len(self._top)
        if top <= FOLD_AT or top * top <= 16 * len(self._base):
            return
        base = dict(self._base)
        for key, value in self._top.items():
            if isinstance(value, _Gone):
                del base[key]
            else:
                base[key] = value
        self._base = base
        self._top = {}


class RecentMemory(Generic[K, V]):
    """The newest ``limit`` or more entries, forgetting older ones a generation at a time.

    Entries are written to a small current generation; a full generation becomes frozen
    and shared by every copy, and the oldest frozen one is dropped. A lookup reads the
    generations newest first, so a rewritten key shows its latest value. The frozen
    generations are also merged into one shared map when one is frozen, so a lookup (most
    are misses: is this run closed?) costs two dict reads, not one per generation.
    """

    __slots__ = ("_current", "_generation_size", "_older", "_generations", "_frozen")

    def __init__(self, limit: int, *, generation_size: int = 125) -> None:
        self._generation_size = generation_size
        self._generations = max(1, -(-limit // generation_size))
        self._current: dict[K, V] = {}
        self._older: tuple[dict[K, V], ...] = ()
        self._frozen: dict[K, V] = {}  # the newest value (not None) of each key in _older

    def fork(self) -> RecentMemory[K, V]:
        """An independent copy: O(generation size)."""
        clone: RecentMemory[K, V] = RecentMemory.__new__(RecentMemory)
        clone._generation_size = self._generation_size
        clone._generations = self._generations
        clone._current = dict(self._current)
        clone._older = self._older
        clone._frozen = self._frozen
        return clone

    def get(self, key: K) -> V | None:
        """The newest value remembered under ``key``, or ``None``."""
        value = self._current.get(key)
        if value is not None:
            return value
        return self._frozen.get(key)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        self._current[key] = value
        if len(self._current) >= self._generation_size:
            self._older = (self._current, *self._older[: self._generations - 1])
            self._current = {}
            frozen: dict[K, V] = {}
            for generation in reversed(self._older):  # oldest first: newer values win
                frozen.update((k, v) for k, v in generation.items() if v is not None)
            self._frozen = frozen

    def to_dict(self) -> dict[K, V]:
        """Remembered entries, oldest first, each key once with its newest value."""
        merged: dict[K, V] = {}
        for generation in (*reversed(self._older), self._current):
            for key, value in generation.items():
                merged.pop(key, None)
                merged[key] = value
        return merged
