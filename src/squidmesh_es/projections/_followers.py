"""Followers kept inside the runtime's process, or as a separate polling process.

``Projections`` drives the three projections through the same ``FollowedProjection`` loop
the library ``Follower`` classes of ``squidmesh_es.projections.system()`` use, over the same
view: embedded (``attach``: a background thread catches up after each command) or as
``squidmesh projections run`` (``run_forever``: catch up on start, then poll). Polling is
what a separate process needs: the library's runners only prompt followers in the leader's
own process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections._following import FollowedProjection, Progress
from squidmesh_es.projections._listing import RunList, list_runs
from squidmesh_es.projections._open_view import open_view
from squidmesh_es.projections._projection import (
    RunCatalog,
    RunIndex,
    RunInspection,
    RunProjection,
)
from squidmesh_es.projections._view import ProjectionView, Row
from squidmesh_es.runtime import SquidMesh

__all__ = ["PROJECTIONS", "ProjectionStatus", "Projections", "projection_status"]

logger = logging.getLogger(__name__)

PROJECTIONS: tuple[type[RunProjection], ...] = (RunCatalog, RunIndex, RunInspection)
"""Every projection, in the order followers run them."""


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
        self.view = view if view is not None else open_view(journal.env)
        self.view.create_views()
        self.projections = {p.name: p(self.view, journal) for p in PROJECTIONS}
        self._followed = {
            name: FollowedProjection(p, journal, batch_size=batch_size)
            for name, p in self.projections.items()
        }

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
        names = self.names(name)
        head = self.journal.recorder.max_notification_id() or 0
        return {
            n: self._followed[n].catch_up(head) for n in names if self._followed[n].stopped is None
        }

    def resume(self, name: str | None = None) -> dict[str, int]:
        """Retry stopped projections from their positions; events applied per projection.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        return {n: self._followed[n].resume() for n in self.names(name)}

    def rebuild(
        self, name: str | None = None, *, progress: Progress | None = None
    ) -> dict[str, int]:
        """Replay the journal into new tables beside the live ones and switch readers over.

        Readers never see an empty view: the live tables answer until the rebuilt ones,
        caught up, take their place in one transaction. A rebuild that fails leaves the
        live tables in place; ``status`` then lists ``<name>.rebuild`` as failed.
        Returns events applied per projection.

        Raises:
            InvalidArgument: ``name`` is not a projection.
        """
        return {n: self._followed[n].rebuild(progress) for n in self.names(name)}

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
            stopped = any(f.stopped is not None for f in self._followed.values())
            if stopped and elapsed - retried_at >= retry_interval:
                retried_at = elapsed
                self.resume()
            else:
                self.catch_up()
            stop.wait(poll_interval)
            elapsed += poll_interval

    # -- reading --------------------------------------------------------------------------

    def status(self) -> list[ProjectionStatus]:
        """Position, lag and last error of each projection, and of an unfinished rebuild.

        A rebuild that failed or was interrupted shows as ``<name>.rebuild`` beside its
        projection; a finished one has taken the projection's place.
        """
        head = self.journal.recorder.max_notification_id() or 0
        names: list[str] = []
        for projection in self.projections.values():
            names.append(projection.name)
            rebuild = projection.beside().name
            if self.view.state(rebuild) is not None:
                names.append(rebuild)
        return [projection_status(self.view, name, head) for name in names]

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


def projection_status(view: ProjectionView, name: str, head: int) -> ProjectionStatus:
    """Where projection ``name`` stands in ``view``, against the journal head ``head``."""
    state: Row = view.state(name) or {}
    return ProjectionStatus(
        name=name,
        position=view.position(name) or 0,
        head=head,
        events_applied=int(state.get("events_applied") or 0),
        error_code=state.get("error_code"),
        error_message=state.get("error_message"),
        error_position=state.get("error_position"),
        failed_at=state.get("failed_at"),
    )
