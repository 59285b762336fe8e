"""Followers: move each projection from its tracking position to the head of the journal.

Why not the library's runners: the ``eventsourcing.system`` runners only prompt followers in
their own process and never catch up on start, and ``ProjectionRunner`` needs ``subscribe()``
(no SQLite), writes one transaction per event (about 900 events/s on Postgres) and waits
forever when a NOTIFY is lost. A follower here pulls notifications from its own position,
in batches, and writes each batch's rows and the batch's end position in one transaction
through the projection and its tracking-recorder view. Starting is catching up, on every
backend, and a poll interval bounds how long a lost wake-up can delay it.

A projection that raises stops: its error and position are stored where ``status`` reads
them, the other projections go on, and commands are never affected. ``resume`` (or a new
process) retries from the stored position.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.utils import Environment

from squidmesh_es.errors import InvalidArgument, SquidMeshError
from squidmesh_es.projections._listing import RunList, list_runs
from squidmesh_es.projections._memory_view import MemoryProjectionView
from squidmesh_es.projections._projection import (
    RunCatalog,
    RunIndex,
    RunInspection,
    RunProjection,
)
from squidmesh_es.projections._sql_view import PostgresProjectionView, SQLiteProjectionView
from squidmesh_es.projections._view import ProjectionView, Row
from squidmesh_es.redaction import redact_text
from squidmesh_es.runtime import SquidMesh

__all__ = ["PROJECTIONS", "ProjectionStatus", "Projections"]

logger = logging.getLogger(__name__)

PROJECTIONS: tuple[type[RunProjection], ...] = (RunCatalog, RunIndex, RunInspection)
"""Every projection, in the order followers run them."""

VIEW_NAME = "squidmesh_projections"
"""Environment name of the view: on Postgres its tracking table is ``<name>_tracking``."""

FAILED = "projection_failed"
"""The error code stored when a projection raised while applying events."""


@dataclass(frozen=True)
class ProjectionStatus:
    """Where one projection stands against the journal."""

    name: str
    position: int
    """The last notification id applied (0 before the first)."""
    head: int
    """The journal's newest notification id when the status was read."""
    events_applied: int
    """Events this projection applied since it was last rebuilt."""
    error_code: str | None
    error_message: str | None
    error_position: int | None
    """The position the projection stood at when it failed (it resumes from there)."""
    failed_at: datetime | None

    @property
    def lag(self) -> int:
        """How many notification ids the projection is behind (ids may have gaps)."""
        return max(self.head - self.position, 0)

    @property
    def state(self) -> str:
        """``failed``, ``caught_up`` or ``behind``."""
        if self.error_code is not None:
            return "failed"
        return "caught_up" if self.lag == 0 else "behind"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as ``squidmesh projections status --json`` prints it."""
        return {
            "name": self.name,
            "state": self.state,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "events_applied": self.events_applied,
            "error": (
                None
                if self.error_code is None
                else {
                    "code": self.error_code,
                    "message": self.error_message,
                    "position": self.error_position,
                    "failed_at": self.failed_at.isoformat() if self.failed_at else None,
                }
            ),
        }


class Projections:
    """The catalog, index and inspection projections of one journal, and their followers.

    Embedded, call ``catch_up()`` after each command (``attach`` wires that); as a separate
    process, call ``run_forever()``. Both resume from the stored positions.
    """

    def __init__(
        self,
        journal: SquidMesh,
        *,
        batch_size: int = 500,
        view: ProjectionView | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidArgument("batch_size", "must be at least 1")
        self.journal = journal
        self.batch_size = batch_size
        self._factory: InfrastructureFactory[Any] | None = None
        self.view = view if view is not None else self._construct_view(journal)
        self.view.create_views()
        self.projections = {p.name: p(self.view, journal) for p in PROJECTIONS}
        self._locks = {name: threading.Lock() for name in self.projections}
        self._stopped: dict[str, str] = {}

    @classmethod
    def attach(cls, mesh: SquidMesh, **options: Any) -> Projections:
        """Projections kept up to date inside ``mesh``'s process, right after each command.

        The runtime nudges a background thread to call ``after_command()`` once a command
        committed, so commands never wait for the views; ``mesh.list_runs`` catches up first.
        """
        projections = cls(mesh, **options)
        projections.catch_up()
        mesh.attach_projections(projections)
        return projections

    def _construct_view(self, journal: SquidMesh) -> ProjectionView:
        settings = journal.storage
        if settings is None or settings.backend == "memory":
            return MemoryProjectionView()
        view_class: type[Any] = (
            SQLiteProjectionView if settings.backend == "sqlite" else PostgresProjectionView
        )
        self._factory = InfrastructureFactory.construct(Environment(VIEW_NAME, settings.env))
        view: ProjectionView = self._factory.tracking_recorder(view_class)
        return view

    # -- following ------------------------------------------------------------------------

    def names(self, name: str | None = None) -> list[str]:
        """``[name]`` checked, or every projection's name.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        if name is None:
            return list(self.projections)
        if name not in self.projections:
            known = ", ".join(self.projections)
            raise InvalidArgument("projection", f"{name!r} is not one of {known}")
        return [name]

    def after_command(self) -> None:
        """Catch up after a committed command; never raises, so the command stays a success."""
        try:
            self.catch_up()
        except Exception:  # noqa: BLE001 - a view must never fail a committed command
            logger.exception("projections did not catch up after a command")

    def catch_up(self, name: str | None = None) -> dict[str, int]:
        """Apply every event past each projection's position; events applied per projection.

        A projection that raises is stopped and its error stored (see ``status``); the
        others still catch up. A stopped projection is skipped until ``resume``.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        head = self.journal.recorder.max_notification_id() or 0
        applied: dict[str, int] = {}
        for projection_name in self.names(name):
            if projection_name in self._stopped:
                continue
            with self._locks[projection_name]:
                applied[projection_name] = self._follow(self.projections[projection_name], head)
        return applied

    def _follow(self, projection: RunProjection, head: int) -> int:
        applied = 0
        position = self.view.position(projection.name) or 0
        while position < head:
            try:
                notifications = self.journal.recorder.select_notifications(
                    start=position,
                    limit=self.batch_size,
                    stop=head,
                    topics=projection.topics,
                    inclusive_of_start=False,
                )
                full = len(notifications) == self.batch_size
                end = notifications[-1].id if full else head
                events = [self.journal.mapper.to_domain_event(n) for n in notifications]
                projection.process_batch(events, Tracking(projection.name, end))
            except IntegrityError as error:
                # Another follower of this view applied the batch first: go on from there.
                moved = self.view.position(projection.name) or 0
                if moved > position:
                    position = moved
                    continue
                self._stop(projection.name, position, error)
                return applied
            except Exception as error:  # noqa: BLE001 - stop this follower, not the others
                self._stop(projection.name, position, error)
                return applied
            applied += len(events)
            position = end
        return applied

    def _stop(self, name: str, position: int, error: Exception) -> None:
        message = _describe(error)
        logger.error(
            "projection %s stopped at position %d: %s",
            name,
            position,
            message,
            exc_info=error,
            extra={"projection": name, "position": position},
        )
        self._stopped[name] = message
        try:
            self.view.record_error(
                name, code=FAILED, message=message, position=position, at=self.journal.now()
            )
        except Exception:  # noqa: BLE001 - the view itself may be what failed
            logger.exception("projection %s: the error could not be stored", name)

    def resume(self, name: str | None = None) -> dict[str, int]:
        """Retry stopped projections from their positions; events applied per projection.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        for projection_name in self.names(name):
            self._stopped.pop(projection_name, None)
        return self.catch_up(name)

    def rebuild(self, name: str | None = None) -> dict[str, int]:
        """Clear projections and replay the journal from its first event into them.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        for projection_name in self.names(name):
            projection = self.projections[projection_name]
            with self._locks[projection_name]:
                self.view.clear(projection_name, projection.tables)
            self._stopped.pop(projection_name, None)
        return self.catch_up(name)

    def run_forever(
        self, stop: threading.Event, *, poll_interval: float = 0.2, retry_interval: float = 30.0
    ) -> None:
        """Follow the journal until ``stop`` is set: the separate-process mode.

        Catches up at once (the backlog left while no follower ran), then every
        ``poll_interval`` seconds. Stopped projections are retried every
        ``retry_interval`` seconds, so a fix deployed to the host resumes them.
        """
        retried_at = 0.0
        elapsed = 0.0
        while not stop.is_set():
            if self._stopped and elapsed - retried_at >= retry_interval:
                retried_at = elapsed
                self.resume()
            else:
                self.catch_up()
            stop.wait(poll_interval)
            elapsed += poll_interval

    # -- reading --------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        """Position, lag and last error of each projection."""
        head = self.journal.recorder.max_notification_id() or 0
        return [self._status(name, head) for name in self.projections]

    def _status(self, name: str, head: int) -> ProjectionStatus:
        state: Row = self.view.state(name) or {}
        return ProjectionStatus(
            name=name,
            position=self.view.position(name) or 0,
            head=head,
            events_applied=int(state.get("events_applied") or 0),
            error_code=state.get("error_code"),
            error_message=state.get("error_message"),
            error_position=state.get("error_position"),
            failed_at=state.get("failed_at"),
        )

    def list_runs(self, **filters: Any) -> RunList:
        """Runs from the catalog, newest first; see ``squidmesh_es.projections.list_runs``."""
        return list_runs(self.view, **filters)

    def close(self) -> None:
        """Detach from the runtime, then release the view's connections; the journal stays open.

        Detaching first waits for a background catch-up in flight, which would otherwise
        read a view while it closes.
        """
        self.journal.detach_projections(self)
        self.view.close()

    def __enter__(self) -> Projections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(error: BaseException) -> str:
    # Stored in the state table and shown by `projections status`: redacted like the journal.
    if isinstance(error, SquidMeshError):
        return redact_text(f"{type(error).__name__} ({error.code}): {error}")
    return redact_text(f"{type(error).__name__}: {error}")
