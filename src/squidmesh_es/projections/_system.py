"""The run catalog, index and inspection as library ``Follower`` applications of a ``System``.

``system()`` is ``System(pipes=[[SquidMesh, RunCatalogFollower], ...])``: run it with the
library's ``SingleThreadedRunner`` or ``MultiThreadedRunner`` and the views follow the
runtime in its own process, kept by the same projection classes and the same follow loop as
``Projections`` and ``squidmesh projections run``, in the same tables.

Three library behaviours are handled here rather than left to the host (see
``eventsourcing-notes.md`` §3.2-3.3):

* runners never catch up on start, so ``follow`` (called by ``runner.start()``) catches the
  view up with the events recorded while no follower ran before the runner goes live;
* ``SingleThreadedRunner`` raises a follower's error out of the leader's ``save`` after the
  leader committed, so a follower never raises: the projection stops alone, its error is
  stored for ``status``, and it is retried on a later prompt after ``retry_interval``;
* the library's follower commits one transaction per event and keeps its position in its own
  recorder; ours keeps no events of its own (an in-memory recorder) and writes a batch's rows
  and its position in one transaction of the view, so a crash never double-counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import LocalNotificationLog, NotificationLog
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, Tracking
from eventsourcing.popo import POPOFactory
from eventsourcing.system import Follower, NotificationLogReader, System
from eventsourcing.utils import Environment, EnvType

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections._followers import ProjectionStatus, projection_status
from squidmesh_es.projections._following import FollowedProjection
from squidmesh_es.projections._open_view import open_view
from squidmesh_es.projections._projection import (
    RunCatalog,
    RunIndex,
    RunInspection,
    RunProjection,
)
from squidmesh_es.runtime import SquidMesh

__all__ = [
    "FOLLOWERS",
    "RunCatalogFollower",
    "RunIndexFollower",
    "RunInspectionFollower",
    "ViewFollower",
    "system",
]


class LeaderJournal(SquidMesh):
    """The leader's journal read through the recorder of the log the runner hands over.

    On memory that recorder is the only way to the leader's events; on SQLite and Postgres
    the journal's own snapshots are read too, so loading the hot queue stays cheap.
    """

    def __init__(self, recorder: ApplicationRecorder, env: EnvType) -> None:
        self._leader_recorder = recorder
        super().__init__(env=env)

    def construct_recorder(self) -> ApplicationRecorder:
        """The leader's recorder, shared (recorders are thread-safe)."""
        return self._leader_recorder


class ViewFollower(Follower[UUID]):
    """A library ``Follower`` keeping one projection in the view beside the journal.

    It follows one leader, the ``SquidMesh`` journal, with the settings the runner gives
    every application (``journal_env(url)``). Subclass to keep your own ``RunProjection``.
    """

    projection_class: ClassVar[type[RunProjection]]
    """The projection this follower keeps."""
    batch_size: ClassVar[int] = 500
    """Most events per view transaction."""
    retry_interval: ClassVar[float] = 30.0
    """Seconds before a stopped projection is retried on the next prompt."""

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        self.view = open_view(self.env)
        self.journal: SquidMesh | None = None
        self._followed: FollowedProjection | None = None
        self._stopped_at: float | None = None

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the given settings: the host's unrelated environment must not pick storage."""
        return Environment(name, dict(env or {}))

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        """In memory: this follower records no events; its rows and position are the view's."""
        return POPOFactory(env)

    @property
    def followed(self) -> FollowedProjection:
        """The projection and its follow loop (once ``follow`` has run).

        Raises:
            InvalidArgument: the follower does not follow the journal yet.
        """
        if self._followed is None:
            raise InvalidArgument("follower", f"{self.name} follows no journal yet")
        return self._followed

    def follow(self, name: str, log: NotificationLog) -> None:
        """Follow the journal ``name`` through ``log``, and catch up with it at once.

        Raises:
            InvalidArgument: a second leader, or a log not read from a local recorder.
        """
        if self._followed is not None:
            raise InvalidArgument("leader", f"{self.name} follows one journal only")
        if not isinstance(log, LocalNotificationLog):
            raise InvalidArgument("leader", "the journal must run in this process")
        journal = LeaderJournal(log.recorder, dict(self.env))
        self.journal = journal
        self.readers[name] = NotificationLogReader(log, section_size=self.batch_size)
        self.mappers[name] = journal.mapper
        projection = self.projection_class(self.view, journal)
        self._followed = FollowedProjection(projection, journal, batch_size=self.batch_size)
        self.catch_up()

    def pull_and_process(
        self, leader_name: str, start: int | None = None, stop: int | None = None
    ) -> None:
        """Catch up from the view's position (the runner's ``start`` and ``stop`` do not apply)."""
        self.catch_up()

    def process_event(self, domain_event: DomainEventProtocol[UUID], tracking: Tracking) -> None:
        """A pushed event is a prompt: catch up from the view's position, which includes it."""
        self.catch_up()

    def catch_up(self) -> int:
        """Apply every event past the view's position; events applied. Never raises.

        A stopped projection is retried once ``retry_interval`` seconds have passed.
        """
        followed = self.followed
        if followed.stopped is not None:
            if self._stopped_at is None:
                self._stopped_at = time.monotonic()
            if time.monotonic() - self._stopped_at < self.retry_interval:
                return 0
            followed.stopped = None
        with self.processing_lock:
            applied = followed.catch_up()
        self._stopped_at = time.monotonic() if followed.stopped is not None else None
        return applied

    def resume(self) -> int:
        """Retry a stopped projection now; events applied."""
        with self.processing_lock:
            applied = self.followed.resume()
        self._stopped_at = time.monotonic() if self.followed.stopped is not None else None
        return applied

    def status(self) -> ProjectionStatus:
        """Position, lag and last error of the projection."""
        head = self.followed.journal.recorder.max_notification_id() or 0
        return projection_status(self.view, self.followed.name, head)

    def close(self) -> None:
        """Release the view's and the journal reader's connections (not the leader's)."""
        self.view.close()
        if self.journal is not None:
            self.journal.close()
        super().close()


class RunCatalogFollower(ViewFollower):
    """Keeps ``run_catalog``: what ``list_runs`` and ``squidmesh list`` read."""

    projection_class = RunCatalog


class RunIndexFollower(ViewFollower):
    """Keeps ``run_index``: the lookup keys ``list_runs`` filters on."""

    projection_class = RunIndex


class RunInspectionFollower(ViewFollower):
    """Keeps ``run_inspection``: each run's latest snapshot document."""

    projection_class = RunInspection


FOLLOWERS: tuple[type[ViewFollower], ...] = (
    RunCatalogFollower,
    RunIndexFollower,
    RunInspectionFollower,
)
"""The followers of the three projections, in the order ``system()`` pipes them."""


def system(
    leader: type[SquidMesh] = SquidMesh,
    followers: Sequence[type[Follower[Any]]] = FOLLOWERS,
) -> System:
    """A ``System`` led by the journal, with the projections' followers (and yours) after it.

    Run it with ``SingleThreadedRunner`` or ``MultiThreadedRunner`` and
    ``env=journal_env(url)``; ``runner.get(SquidMesh)`` is the runtime. ``leader`` may be a
    host's subclass of ``SquidMesh``; ``followers`` may add the host's own followers or
    process applications.
    """
    return System(pipes=[[leader, follower] for follower in followers])
