"""The library's Postgres persistence, with a statement timeout and a pipeline that flushes.

Two faults of the stack below us, each of which once froze the whole journal:

- psycopg 3.3's pipeline (``_pipeline_communicate``) stops sending when its command queue
  is empty even if ``PQflush`` reported bytes still buffered; ``Pipeline.sync()`` then
  waits for results of a message the server never fully received. The server sits in
  ``ClientRead`` in the middle of the ``INSERT`` while holding the events table's
  exclusive lock, and every other writer times out. Large commits (a few MB) hit it at
  random, more often the larger they are. `_FlushingPipeline` finishes the flush first.
- The library sets ``lock_timeout`` and ``idle_in_transaction_session_timeout`` but has
  no ``statement_timeout``: a statement that never ends holds the lock forever.
  ``POSTGRES_STATEMENT_TIMEOUT`` (seconds) sets it for every connection of the pool.

It also writes events faster. The library inserts an array of a composite type, which
psycopg renders as text in Python, escaping every byte of every event's JSON: a fifth of a
busy worker's CPU went there, most of it on queue snapshots. `_ArrayInsert` sends four
parallel arrays in binary instead; the rows written are the same.

Selected with ``PERSISTENCE_MODULE=squidmesh_es.runtime._postgres:PostgresFactory``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.postgres import PostgresFactory as LibraryPostgresFactory
from eventsourcing.utils import Environment
from psycopg.abc import PQGen
from psycopg.generators import send
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

__all__ = ["POSTGRES_STATEMENT_TIMEOUT", "PostgresFactory"]

POSTGRES_STATEMENT_TIMEOUT = "POSTGRES_STATEMENT_TIMEOUT"
"""Seconds a statement may run before the server cancels it; ``0`` or unset: no limit."""


class _FlushingPipeline(psycopg.Pipeline):
    """A pipeline that sends every queued byte before it waits for results."""

    def _communicate_gen(self) -> PQGen[None]:
        yield from super()._communicate_gen()
        yield from send(self.pgconn)


class _Connection(psycopg.Connection[Any]):
    """A connection whose pipelines are `_FlushingPipeline` (psycopg's body otherwise)."""

    @contextmanager
    def pipeline(self) -> Iterator[psycopg.Pipeline]:
        """Switch the connection into pipeline mode (psycopg's own, flushing fully)."""
        with self.lock:
            self._check_connection_ok()
            if (pipeline := self._pipeline) is None:
                pipeline = self._pipeline = _FlushingPipeline(self)
        try:
            with pipeline:
                yield pipeline
        finally:
            if pipeline.level == 0:
                with self.lock:
                    self._pipeline = None


class _ArrayInsert:
    """Insert stored events as four binary arrays (ids, versions, topics, states)."""

    datastore: PostgresDatastore
    events_table_name: str
    insert_events_statement: Composed

    def _use_arrays(self, returning: str = "") -> None:
        id_type = Identifier(self.datastore.originator_id_type)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} AS t"
            " (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
            + returning
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=id_type,
        )

    def _insert_arrays(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> None:
        curs.execute(
            self.insert_events_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )


class _EventsRecorder(_ArrayInsert, PostgresApplicationRecorder):
    """The library's application recorder (table lock, notify, ids back), array inserts."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._use_arrays(" RETURNING notification_id")

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        self._insert_arrays(curs, stored_events)


class _SnapshotsRecorder(_ArrayInsert, PostgresAggregateRecorder):
    """The library's aggregate recorder (snapshots), with array inserts."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._use_arrays()

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        self._insert_arrays(curs, stored_events)


class PostgresFactory(LibraryPostgresFactory):
    """The library's factory, with our connection class, array inserts and statement timeout."""

    aggregate_recorder_class = _SnapshotsRecorder
    application_recorder_class = _EventsRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        pool = self.datastore.pool  # not opened yet: the settings reach every connection
        pool.connection_class = _Connection
        seconds = float(self.env.get(POSTGRES_STATEMENT_TIMEOUT) or "0")
        if seconds > 0:
            assert isinstance(pool.kwargs, dict)
            pool.kwargs["options"] = f"-c statement_timeout={int(seconds * 1000)}"
