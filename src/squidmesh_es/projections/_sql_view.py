"""The projection tables on SQLite and Postgres, beside the library's tracking table.

Both backends share the SQL; they differ in placeholders, how values are stored (SQLite keeps
times as fixed-width ISO-8601 text so text order is time order, and JSON as text) and how a
transaction finds the tables (Postgres sets the journal's schema as its search path, so the
contract DDL stays unqualified and readable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg import sql
from psycopg.types.json import Jsonb

from squidmesh_es.projections._contract import (
    CATALOG,
    INDEX,
    STATE,
    TABLES,
    Column,
    ColumnType,
    Table,
    load_ddl,
)
from squidmesh_es.projections._view import Changes, ProjectionView, Row, RunQuery, by_run_id

__all__ = ["POSTGRES_TRACKING_TABLE", "PostgresProjectionView", "SQLiteProjectionView"]

POSTGRES_TRACKING_TABLE = "squidmesh_projections_tracking"
"""The tracking table of the projections on Postgres, whatever environment built the view."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


class _SQLView(ProjectionView):
    """SQL shared by both backends; subclasses supply the dialect."""

    backend: str
    tracking_table: str

    # -- dialect ------------------------------------------------------------------------

    def _mark(self) -> str:
        raise NotImplementedError

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _encode(self, column: Column, value: Any) -> Any:
        raise NotImplementedError

    def _decode(self, column: Column, value: Any) -> Any:
        raise NotImplementedError

    def _insert_tracking_row(self, cursor: Any, tracking: Tracking) -> None:
        raise NotImplementedError

    def _hold_off_writers(self, cursor: Any) -> None:
        """Make every follower's write wait until this transaction ends."""
        raise NotImplementedError

    def _commit_without_flush(self, cursor: Any) -> None:
        """Let this transaction's commit return before it reaches the disk, where possible."""

    # -- shared -------------------------------------------------------------------------

    def create_views(self) -> None:
        """Create the projection tables from the contract DDL when missing."""
        with self._cursor(commit=True) as cursor:
            for table in TABLES:
                for statement in load_ddl(self.backend, table):
                    cursor.execute(statement)

    def write(self, projection: str, changes: Changes, tracking: Tracking, *, events: int) -> None:
        """Apply ``changes``, count ``events`` and move ``projection`` to ``tracking``, atomically.

        The tracking insert comes first: it is a write, so SQLite takes its write lock
        before anything is read, and a replayed position fails before any row is touched.
        """
        m = self._mark()
        with self._cursor(commit=True) as cursor:
            self._commit_without_flush(cursor)
            self._insert_tracking_row(cursor, tracking)
            for table, rows in changes.upserts.items():
                if rows:
                    cursor.executemany(
                        self._upsert_sql(table), [self._values(table, r) for r in rows]
                    )
            for table, run_id, prefix in changes.removals:
                cursor.execute(
                    f"DELETE FROM {table.name} WHERE run_id = {m} AND substr(key, 1, {m}) = {m}",
                    (self._encode(table.column("run_id"), run_id), len(prefix), prefix),
                )
            cursor.execute(
                f"INSERT INTO {STATE.name} (projection, events_applied) VALUES ({m}, {m}) "
                "ON CONFLICT (projection) DO UPDATE SET "
                f"events_applied = {STATE.name}.events_applied + excluded.events_applied, "
                "error_code = NULL, error_message = NULL, error_position = NULL, failed_at = NULL",
                (projection, events),
            )

    def rows(
        self, table: Table, run_ids: Iterable[str], columns: Sequence[str] | None = None
    ) -> dict[str, Row]:
        """The rows of ``table`` (keyed by ``run_id``) for the given runs that exist.

        Given ``columns``, each row holds only those (and ``run_id``).
        """
        ids = sorted(set(run_ids))
        if not ids:
            return {}
        key = table.column("run_id")
        wanted = [key, *(table.column(n) for n in columns or () if n != "run_id")]
        selected = table.columns if columns is None else tuple(wanted)
        marks = ", ".join(self._mark() for _ in ids)
        with self._cursor(commit=False) as cursor:
            cursor.execute(
                f"SELECT {', '.join(c.name for c in selected)} FROM {table.name} "
                f"WHERE run_id IN ({marks})",
                [self._encode(key, i) for i in ids],
            )
            return by_run_id(
                {c.name: self._decode(c, r[c.name]) for c in selected} for r in cursor.fetchall()
            )

    def dump(self, table: Table) -> list[Row]:
        """Every row of ``table`` ordered by primary key: exports and comparisons."""
        with self._cursor(commit=False) as cursor:
            cursor.execute(
                f"SELECT {', '.join(table.column_names)} FROM {table.name} "
                f"ORDER BY {', '.join(table.primary_key)}"
            )
            return [self._decode_row(table, r) for r in cursor.fetchall()]

    def select_runs(self, query: RunQuery) -> list[Row]:
        """Catalog rows matching ``query``, newest first, from the ordered indexes.

        The keyset condition seeks straight to the page in the ``(…, started_at, run_id)``
        indexes, so a deep page costs what the first does.
        """
        m = self._mark()
        where: list[str] = []
        params: list[Any] = []
        for name, value in query.catalog_filters().items():
            where.append(f"c.{name} = {m}")
            params.append(self._encode(CATALOG.column(name), value))
        for key, value in query.index:
            where.append(
                f"EXISTS (SELECT 1 FROM {INDEX.name} i WHERE i.key = {m} "
                f"AND i.value = {m} AND i.run_id = c.run_id)"
            )
            params += [key, value]
        if query.after is not None:
            started_at, run_id = query.after
            where.append(f"(c.started_at, c.run_id) < ({m}, {m})")
            params += [
                self._encode(CATALOG.column("started_at"), started_at),
                self._encode(CATALOG.column("run_id"), run_id),
            ]
        text = f"SELECT {', '.join('c.' + n for n in CATALOG.column_names)} FROM {CATALOG.name} c"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += f" ORDER BY c.started_at DESC, c.run_id DESC LIMIT {m}"
        params.append(query.limit)
        with self._cursor(commit=False) as cursor:
            cursor.execute(text, params)
            return [self._decode_row(CATALOG, r) for r in cursor.fetchall()]

    def state(self, projection: str) -> Row | None:
        """The bookkeeping row of ``projection``, if it ever wrote or failed."""
        with self._cursor(commit=False) as cursor:
            cursor.execute(
                f"SELECT {', '.join(STATE.column_names)} FROM {STATE.name} "
                f"WHERE projection = {self._mark()}",
                (projection,),
            )
            row = cursor.fetchone()
        return None if row is None else self._decode_row(STATE, row)

    def record_error(
        self, projection: str, *, code: str, message: str, position: int | None, at: datetime
    ) -> None:
        """Remember why ``projection`` stopped; the next successful write clears it."""
        m = self._mark()
        failed_at = self._encode(STATE.column("failed_at"), at)
        with self._cursor(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {STATE.name} (projection, events_applied, error_code, "
                f"error_message, error_position, failed_at) VALUES ({m}, 0, {m}, {m}, {m}, {m}) "
                "ON CONFLICT (projection) DO UPDATE SET error_code = excluded.error_code, "
                "error_message = excluded.error_message, "
                "error_position = excluded.error_position, failed_at = excluded.failed_at",
                (projection, code, message, position, failed_at),
            )

    def prepare_beside(self, projection: str, tables: Sequence[Table]) -> None:
        """Create ``tables`` empty (dropping leftovers) and forget ``projection``'s position.

        The tables get no secondary indexes: ``switch`` creates the live table's.
        """
        m = self._mark()
        with self._cursor(commit=True) as cursor:
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table.name}")
                cursor.execute(self._create_beside(table))
            cursor.execute(f"DELETE FROM {STATE.name} WHERE projection = {m}", (projection,))
            cursor.execute(
                f"DELETE FROM {self.tracking_table} WHERE application_name = {m}", (projection,)
            )

    def switch(self, projection: str, rebuilt: str, tables: Sequence[tuple[Table, Table]]) -> bool:
        """Put each rebuilt table in place of its live one, if the rebuild is not behind.

        The drop, rename and index creation are transactional on both backends, so
        readers see the old table until the commit (SQLite readers keep their snapshot;
        Postgres readers wait on the drop's lock, then read the new table).
        """
        m = self._mark()
        with self._cursor(commit=True) as cursor:
            self._hold_off_writers(cursor)
            live = self._position_in(cursor, projection)
            new = self._position_in(cursor, rebuilt)
            if new < live:
                return False
            for live_table, rebuilt_table in tables:
                cursor.execute(f"DROP TABLE {live_table.name}")
                cursor.execute(f"ALTER TABLE {rebuilt_table.name} RENAME TO {live_table.name}")
                for statement in load_ddl(self.backend, live_table):
                    cursor.execute(statement)
            cursor.execute(
                f"DELETE FROM {self.tracking_table} WHERE application_name IN ({m}, {m})",
                (projection, rebuilt),
            )
            if new:
                self._insert_tracking_row(cursor, Tracking(projection, new))
            cursor.execute(f"DELETE FROM {STATE.name} WHERE projection = {m}", (projection,))
            cursor.execute(
                f"UPDATE {STATE.name} SET projection = {m} WHERE projection = {m}",
                (projection, rebuilt),
            )
        return True

    def _position_in(self, cursor: Any, projection: str) -> int:
        cursor.execute(
            f"SELECT MAX(notification_id) AS position FROM {self.tracking_table} "
            f"WHERE application_name = {self._mark()}",
            (projection,),
        )
        row = cursor.fetchone()
        return int(row["position"] or 0) if row is not None else 0

    def _create_beside(self, table: Table) -> str:
        """The ``CREATE TABLE`` of ``table``'s contract DDL, for a table named ``table.name``."""
        live = next(t for t in TABLES if t.ddl == table.ddl)
        create = next(s for s in load_ddl(self.backend, live) if s.startswith("CREATE TABLE"))
        return create.replace(live.name, table.name, 1)

    def _upsert_sql(self, table: Table) -> str:
        names = table.column_names
        marks = ", ".join(self._mark() for _ in names)
        text = (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(table.primary_key)}) DO "
        )
        updated = [n for n in names if n not in table.primary_key]
        if not updated:
            return text + "NOTHING"
        return text + "UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in updated)

    def _values(self, table: Table, row: Row) -> list[Any]:
        return [self._encode(c, row.get(c.name)) for c in table.columns]

    def _decode_row(self, table: Table, row: Any) -> Row:
        return {c.name: self._decode(c, row[c.name]) for c in table.columns}


class SQLiteProjectionView(_SQLView, SQLiteTrackingRecorder):
    """The projection tables in the journal's SQLite file, with the library's ``tracking``."""

    backend = "sqlite"
    tracking_table = "tracking"
    datastore: SQLiteDatastore

    def create_table(self) -> None:
        """Create the tracking table and the projection tables when missing."""
        super().create_table()
        self.create_views()

    def _mark(self) -> str:
        return "?"

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def _insert_tracking_row(self, cursor: Any, tracking: Tracking) -> None:
        self._insert_tracking(cursor, tracking)

    def _hold_off_writers(self, cursor: Any) -> None:
        # A first write takes the database's write lock (the transaction began deferred).
        cursor.execute(f"UPDATE {STATE.name} SET events_applied = events_applied WHERE 0")

    def _encode(self, column: Column, value: Any) -> Any:
        if value is None:
            return None
        if column.type is ColumnType.TIMESTAMP:
            return _utc(value).strftime(_TIME_FORMAT)
        if column.type is ColumnType.JSON:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        if column.type is ColumnType.BOOLEAN:
            return int(bool(value))
        if column.type is ColumnType.UUID:
            return str(value)
        return value

    def _decode(self, column: Column, value: Any) -> Any:
        if value is None:
            return None
        if column.type is ColumnType.TIMESTAMP:
            return datetime.fromisoformat(value)
        if column.type is ColumnType.JSON:
            return json.loads(value)
        if column.type is ColumnType.BOOLEAN:
            return bool(value)
        return value

    def close(self) -> None:
        """Release connections."""
        self.datastore.close()


class PostgresProjectionView(_SQLView, PostgresTrackingRecorder):
    """The projection tables in the journal's Postgres schema, beside their tracking table."""

    backend = "postgres"
    datastore: PostgresDatastore

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        # The library names the table after the environment (``<projection>_tracking`` under
        # a ProjectionRunner); every driver must share one table to share the positions.
        kwargs["tracking_table_name"] = POSTGRES_TRACKING_TABLE
        super().__init__(datastore, **kwargs)
        self.tracking_table = self.tracking_table_name

    def create_table(self) -> None:
        """Create the tracking table and the projection tables when missing."""
        super().create_table()
        self.create_views()

    def _mark(self) -> str:
        return "%s"

    @contextmanager
    def _cursor(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            cursor.execute(
                sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.datastore.schema))
            )
            yield cursor

    def _insert_tracking_row(self, cursor: Any, tracking: Tracking) -> None:
        self._insert_tracking(cursor, tracking)

    def _commit_without_flush(self, cursor: Any) -> None:
        # The view is derived: a database crash may lose its last few batches, rows and
        # position together (never one without the other), and they are applied again.
        # Not waiting for each batch's WAL flush keeps catch-up off the disk's latency.
        cursor.execute("SET LOCAL synchronous_commit TO OFF")

    def _hold_off_writers(self, cursor: Any) -> None:
        # Every follower's write inserts its tracking row first, so it waits here.
        cursor.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.Identifier(self.tracking_table)
            )
        )

    def _encode(self, column: Column, value: Any) -> Any:
        if value is None:
            return None
        if column.type is ColumnType.JSON:
            return Jsonb(value)
        if column.type is ColumnType.UUID:
            return value if isinstance(value, UUID) else UUID(str(value))
        if column.type is ColumnType.TIMESTAMP:
            return _utc(value)
        return value

    def _decode(self, column: Column, value: Any) -> Any:
        if value is None:
            return None
        if column.type is ColumnType.UUID:
            return str(value)
        if column.type is ColumnType.TIMESTAMP:
            return _utc(value)
        return value

    def close(self) -> None:
        """Release connections."""
        self.datastore.close()


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
