"""Queue snapshots written by a background thread, never on the command path.

A queue's snapshot costs O(live attempts): about 5 s for 100,000 queued runs. Taking it in
``save`` would stall the command that crossed the interval, so the saved queue (a copy,
O(1)) is handed to one thread that writes the newest pending snapshot of each queue.
Snapshots are disposable caches: one lost at shutdown only makes the next load replay more
events.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

__all__ = ["Snapshotter"]

logger = logging.getLogger("squidmesh_es.runtime")


class Snapshotter:
    """Writes the newest submitted snapshot of each aggregate, one at a time, in a thread."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._pending: dict[UUID, Any] = {}
        self._lock = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, aggregate: Any) -> None:
        """Snapshot a copy of ``aggregate`` as it is now (replacing an older pending one)."""
        with self._lock:
            if self._closed:
                return
            self._pending[aggregate.id] = copy.deepcopy(aggregate)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="squidmesh-snapshots", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted snapshot is written; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending (up to ``timeout``), then stop the thread."""
        self.wait(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending or self._closed)
                if self._closed and not self._pending:
                    return
                _, aggregate = self._pending.popitem()
                self._busy = True
            try:
                self._write(aggregate)
            except Exception:  # noqa: BLE001 - a snapshot is a cache; loads replay instead
                logger.warning("snapshot not written; loads replay more events", exc_info=True)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()
