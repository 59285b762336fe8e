"""The ``SquidMesh`` application: one ``eventsourcing`` application holding both aggregates.

Runs and queues live in one application so that ``save(run, queue)`` commits the facts of
one decision in one transaction on every backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Transcoding
from eventsourcing.utils import Environment

from squidmesh_es.domain import DispatchQueue, WorkflowRun, parse_run_id, queue_id
from squidmesh_es.errors import Conflict, InvalidArgument, RunNotFound
from squidmesh_es.runtime._clock import Clock, SystemClock, ensure_aware
from squidmesh_es.runtime._mapper import JournalMapper
from squidmesh_es.runtime._settings import (
    StorageSettings,
    database_url_from_env,
    parse_database_url,
)

__all__ = ["SquidMesh"]

logger = logging.getLogger(__name__)


class SquidMesh(Application[UUID]):
    """Durable workflows journaled as events: the runtime's entry point.

    Open one with ``SquidMesh.open(url)`` or ``SquidMesh.from_env()`` and close it when done
    (it is a context manager). Several instances may live in one process.

    A host that keeps its own aggregates can subclass it: everything saved through one
    application commits in one transaction.
    """

    name = "SquidMesh"
    snapshotting_intervals = {WorkflowRun: 100, DispatchQueue: 200}
    env = {"AGGREGATE_CACHE_MAXSIZE": "512"}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock | None = None,
        queue: str = "default",
        transcodings: Iterable[Transcoding] = (),
        storage: StorageSettings | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.default_queue = queue
        self.storage = storage
        self._extra_transcodings = tuple(transcodings)
        queue_id(queue)  # validates the name before anything is built
        super().__init__(env=env)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        queue: str = "default",
        clock: Clock | None = None,
        transcodings: Iterable[Transcoding] = (),
    ) -> SquidMesh:
        """Open the journal at ``url`` (``memory://``, ``sqlite:///file.db``, ``postgresql://``).

        Tables are created when missing, and so is the Postgres ``schema`` named in the URL.

        Raises:
            InvalidArgument: the URL is not one of the supported forms.
        """
        settings = parse_database_url(url)
        if settings.postgres_schema:
            _create_postgres_schema(settings)
        return cls(
            env=settings.env,
            clock=clock,
            queue=queue,
            transcodings=transcodings,
            storage=settings,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, clock: Clock | None = None
    ) -> SquidMesh:
        """Open the journal named by ``SQUIDMESH_DATABASE_URL`` (default: ``squidmesh.db``).

        ``SQUIDMESH_QUEUE`` sets the default queue. Only ``SQUIDMESH_*`` keys are read.
        """
        environ = os.environ if environ is None else environ
        return cls.open(
            database_url_from_env(environ),
            queue=environ.get("SQUIDMESH_QUEUE", "default"),
            clock=clock,
        )

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        """Build the library settings from the class defaults and ``env`` only.

        The library would merge the whole process environment; a host's unrelated
        variables must not reconfigure our storage.
        """
        merged = dict(type(self).env)
        if type(self).is_snapshotting_enabled or type(self).snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(env or {})
        return Environment(name, merged)

    def construct_mapper(self) -> Mapper[UUID]:
        """Use ``JournalMapper`` so an undecodable event becomes ``CorruptedEvent``."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=JournalMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Register the library's transcodings plus any given to ``open``."""
        super().register_transcodings(transcoder)
        for transcoding in self._extra_transcodings:
            transcoder.register(transcoding)

    # -- the journal ----------------------------------------------------------------------

    def now(self, now: datetime | None = None) -> datetime:
        """``now`` if given (checked to be timezone-aware), else the clock's time."""
        return ensure_aware(now) if now is not None else ensure_aware(self.clock.now())

    def get_run(self, run_id: UUID | str) -> WorkflowRun:
        """Load a run's aggregate (from its newest snapshot plus later events).

        Raises:
            InvalidRunId: ``run_id`` is not a UUID.
            RunNotFound: no run has this id.
            CorruptedEvent: a stored event of the run cannot be decoded.
        """
        uid = parse_run_id(run_id)
        try:
            run: Any = self.repository.get(uid)
        except AggregateNotFoundError:
            raise RunNotFound(uid) from None
        if not isinstance(run, WorkflowRun):
            raise RunNotFound(uid)
        return run

    def get_queue(self, name: str | None = None, *, now: datetime | None = None) -> DispatchQueue:
        """Load a queue's aggregate, or a new unsaved one when the queue has no journal yet.

        Raises:
            InvalidArgument: the queue name is invalid.
            CorruptedEvent: a stored event of the queue cannot be decoded.
        """
        name = name or self.default_queue
        qid = queue_id(name)
        try:
            queue: Any = self.repository.get(qid)
        except AggregateNotFoundError:
            return DispatchQueue.open(name, now=self.now(now))
        if not isinstance(queue, DispatchQueue):
            raise InvalidArgument("queue", f"{name!r} does not name a dispatch queue")
        return queue

    def _take_snapshots(self, processing_event: Any) -> None:
        # Snapshots are disposable caches written after the events committed: a failure
        # to write one must not make a committed command look failed.
        try:
            super()._take_snapshots(processing_event)
        except Exception:  # noqa: BLE001
            logger.warning("snapshot not written; loads replay more events", exc_info=True)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Commit every pending event of ``objs`` in one transaction.

        Raises:
            Conflict: one of the aggregates moved on since it was loaded; nothing was
                written. Discard the objects, reload and decide again.
        """
        try:
            return super().save(*objs, **kwargs)
        except IntegrityError as exc:
            ids = [str(getattr(o, "id", getattr(o, "originator_id", "?"))) for o in objs if o]
            raise Conflict("journal moved on since it was read", aggregates=ids) from exc


def _create_postgres_schema(settings: StorageSettings) -> None:
    import psycopg
    from psycopg import sql

    env = settings.env
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(str(settings.postgres_schema))
            )
        )
