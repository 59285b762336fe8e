"""One projection moved from its tracking position to the journal's head, batch by batch.

Every driver uses this one loop: the embedded ``Projections``, the ``squidmesh projections``
process and the library ``Follower`` classes a ``System`` runner drives. It reads the
notifications after the projection's position (filtered by its topics in SQL) and hands each
batch to the projection, which writes the rows and the batch's end position in one
transaction. Starting is catching up: nothing waits for a prompt.

A projection that raises stops alone: its error and position are stored where ``status``
reads them, and ``catch_up`` returns without raising, so no command, leader ``save`` or
runner thread ever fails because a view did. ``resume`` retries from the stored position.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking

from squidmesh_es.errors import SquidMeshError
from squidmesh_es.projections._projection import RunProjection
from squidmesh_es.redaction import redact_text
from squidmesh_es.runtime import SquidMesh

__all__ = ["FAILED", "FollowedProjection", "Progress"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int, int], None]
"""Told ``(projection, position, head, events applied)`` after each batch."""

FAILED = "projection_failed"
"""The error code stored when a projection raised while applying events."""


class FollowedProjection:
    """A projection, the journal it follows, and whether it stopped on an error."""

    def __init__(self, projection: RunProjection, journal: SquidMesh, *, batch_size: int) -> None:
        self.projection = projection
        self.journal = journal
        self.batch_size = batch_size
        self.stopped: str | None = None
        """Why the projection stopped (``None`` while it follows)."""
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The projection's name: its tracking key and its bookkeeping row."""
        return self.projection.name

    def catch_up(self, head: int | None = None, *, progress: Progress | None = None) -> int:
        """Apply every event up to ``head`` (default: the newest); events applied.

        Never raises: a failure stops the projection and is stored. A stopped projection
        is skipped until ``resume``. ``progress`` hears of each batch applied.
        """
        if self.stopped is not None:
            return 0
        with self._lock:
            if head is None:
                head = self.journal.recorder.max_notification_id() or 0
            return self._follow(head, progress)

    def resume(self) -> int:
        """Clear the stop and catch up from the stored position; events applied."""
        self.stopped = None
        return self.catch_up()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Replay the journal into tables beside the live ones, then switch; events applied.

        Readers keep the live tables until the switch, which happens once the rebuild
        caught up with the live position (another process may keep following meanwhile).
        A rebuild that fails stops with its error stored under ``<name>.rebuild`` and
        leaves the live tables as they were; returns what it applied so far.
        """
        live = self.projection
        rebuilt = FollowedProjection(live.beside(), self.journal, batch_size=self.batch_size)
        live.view.prepare_beside(rebuilt.name, rebuilt.projection.tables)
        applied = 0
        while True:
            applied += rebuilt.catch_up(progress=progress)
            if rebuilt.stopped is not None:
                return applied
            with self._lock:
                pairs = list(zip(live.tables, rebuilt.projection.tables, strict=True))
                if live.view.switch(self.name, rebuilt.name, pairs):
                    self.stopped = None
                    return applied

    def _follow(self, head: int, progress: Progress | None) -> int:
        projection = self.projection
        applied = 0
        position = projection.view.position(projection.name) or 0
        with _Pages(self.journal, projection.topics, self.batch_size, head) as pages:
            while position < head:
                try:
                    events, end = pages.after(position)
                    projection.process_batch(events, Tracking(projection.name, end))
                except IntegrityError as error:
                    # Another follower of this view applied the batch first: go on from there.
                    moved = projection.view.position(projection.name) or 0
                    if moved > position:
                        position = moved
                        continue
                    self._stop(position, error)
                    return applied
                except Exception as error:  # noqa: BLE001 - stop this projection, not its caller
                    self._stop(position, error)
                    return applied
                applied += len(events)
                position = end
                if progress is not None:
                    progress(projection.name, position, head, applied)
        return applied

    def _stop(self, position: int, error: Exception) -> None:
        message = _describe(error)
        logger.error(
            "projection %s stopped at position %d: %s",
            self.name,
            position,
            message,
            exc_info=error,
            extra={"projection": self.name, "position": position},
        )
        self.stopped = message
        try:
            self.projection.view.record_error(
                self.name, code=FAILED, message=message, position=position, at=self.journal.now()
            )
        except Exception:  # noqa: BLE001 - the view itself may be what failed
            logger.exception("projection %s: the error could not be stored", self.name)


def _describe(error: BaseException) -> str:
    # Stored in the state table and shown by `projections status`: redacted like the journal.
    if isinstance(error, SquidMeshError):
        return redact_text(f"{type(error).__name__} ({error.code}): {error}")
    return redact_text(f"{type(error).__name__}: {error}")


class _Pages:
    """The projection's events after a position, a page at a time, the next one read ahead.

    A full page means more may follow, so the next page is read (and decoded) in a thread
    while the caller applies this one: the wait for the database overlaps the work on
    the view. A page ends at its last event, or at ``head`` when it is not full, so its
    end position also skips the journal's events the projection does not follow.
    """

    def __init__(self, journal: SquidMesh, topics: Sequence[str], size: int, head: int) -> None:
        self.journal = journal
        self.topics = topics
        self.size = size
        self.head = head
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[tuple[list[Any], int]]] | None = None

    def after(self, position: int) -> tuple[list[Any], int]:
        """The page after ``position``: its events and its end position."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == position:
            events, end = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].cancel()
            events, end = self._read(position)
        if len(events) == self.size and end < self.head:
            if self._reader is None:
                self._reader = ThreadPoolExecutor(1, thread_name_prefix="squidmesh-projection")
            self._ahead = (end, self._reader.submit(self._read, end))
        return events, end

    def _read(self, position: int) -> tuple[list[Any], int]:
        notifications = self.journal.recorder.select_notifications(
            start=position,
            limit=self.size,
            stop=self.head,
            topics=self.topics,
            inclusive_of_start=False,
        )
        end = notifications[-1].id if len(notifications) == self.size else self.head
        return [self.journal.mapper.to_domain_event(n) for n in notifications], end

    def __enter__(self) -> _Pages:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
