"""The data keys of erasable runs, kept outside the events so that destroying one erases.

Events are immutable and copied into every backup; a key is a row that can be deleted. An
erasable run's personal data is stored encrypted under its own key (see `_sealing`), and
``forget_run`` destroys the key: the ciphertext stays in the journal, unreadable.

The keys live beside the journal in ``squidmesh_run_keys`` (SQLite, Postgres) or in a dict
(``memory://``). A destroyed key leaves its row behind with ``data_key`` NULL and
``forgotten_at`` set, so a forgotten run never gets a new key. The table is created with the
journal's tables, and never by a journal opened with ``create=False``; a journal without the
table has no erasable runs.

With a ``cipher_key``, the journal's cipher also encrypts each data key before it is stored,
so the key table is no easier to read than the journal itself.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Cipher, PersistenceError, Recorder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg import sql

__all__ = ["DATA_KEY_TABLE", "DataKeys", "data_keys_for"]

DATA_KEY_TABLE = "squidmesh_run_keys"
_KEY_BYTES = 32


class DataKeys(ABC):
    """Per-run AES-256 keys: created once, read, destroyed for good.

    ``cipher``, when given, encrypts each key as stored (the journal's own cipher).
    """

    def __init__(self, cipher: Cipher | None) -> None:
        self.cipher = cipher

    def new_key(self) -> bytes:
        """A fresh key in its stored form."""
        key = os.urandom(_KEY_BYTES)
        return self.cipher.encrypt(key) if self.cipher is not None else key

    def key_of(self, row: Any) -> bytes | None:
        """The key a stored row holds (``None``: no row, or the key was destroyed)."""
        if row is None:
            return None
        value = row["data_key"] if isinstance(row, dict | sqlite3.Row) else row[0]
        if value is None:
            return None
        stored = bytes(value)
        return self.cipher.decrypt(stored) if self.cipher is not None else stored

    @abstractmethod
    def create_table(self) -> None:
        """Create the key table when missing."""

    @abstractmethod
    def create(self, run_id: UUID) -> bytes | None:
        """The run's key, made now unless it has one; ``None`` once it was destroyed.

        Two processes creating the key of one run at once get the same key.
        """

    @abstractmethod
    def get(self, run_id: UUID) -> bytes | None:
        """The run's key; ``None`` when it was destroyed or never made."""

    @abstractmethod
    def destroy(self, run_id: UUID, *, now: datetime) -> None:
        """Destroy the run's key (idempotent); its data can no longer be read anywhere."""


def data_keys_for(recorder: Recorder, cipher: Cipher | None = None) -> DataKeys:
    """The key store beside ``recorder``'s journal: same database, or a dict in memory."""
    datastore = getattr(recorder, "datastore", None)
    if isinstance(datastore, SQLiteDatastore):
        return _SQLiteKeys(datastore, cipher)
    if isinstance(datastore, PostgresDatastore):
        return _PostgresKeys(datastore, cipher)
    return _MemoryKeys(cipher)


class _MemoryKeys(DataKeys):
    def __init__(self, cipher: Cipher | None) -> None:
        super().__init__(cipher)
        self._keys: dict[UUID, bytes | None] = {}
        self._lock = threading.Lock()

    def create_table(self) -> None:
        """Nothing to create."""

    def create(self, run_id: UUID) -> bytes | None:
        with self._lock:
            return self.key_of((self._keys.setdefault(run_id, self.new_key()),))

    def get(self, run_id: UUID) -> bytes | None:
        return self.key_of((self._keys[run_id],) if run_id in self._keys else None)

    def destroy(self, run_id: UUID, *, now: datetime) -> None:
        with self._lock:
            self._keys[run_id] = None


class _SQLiteKeys(DataKeys):
    def __init__(self, datastore: SQLiteDatastore, cipher: Cipher | None) -> None:
        super().__init__(cipher)
        self.datastore = datastore

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {DATA_KEY_TABLE} (run_id TEXT PRIMARY KEY, "
                "data_key BLOB, forgotten_at TEXT)"
            )

    def create(self, run_id: UUID) -> bytes | None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {DATA_KEY_TABLE} (run_id, data_key) VALUES (?, ?) "
                "ON CONFLICT (run_id) DO NOTHING",
                (str(run_id), self.new_key()),
            )
            cursor.execute(
                f"SELECT data_key FROM {DATA_KEY_TABLE} WHERE run_id = ?", (str(run_id),)
            )
            return self.key_of(cursor.fetchone())

    def get(self, run_id: UUID) -> bytes | None:
        try:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT data_key FROM {DATA_KEY_TABLE} WHERE run_id = ?", (str(run_id),)
                )
                return self.key_of(cursor.fetchone())
        except (PersistenceError, sqlite3.OperationalError) as exc:
            if "no such table" in str(exc):
                return None  # opened with create=False before any run was erasable
            raise

    def destroy(self, run_id: UUID, *, now: datetime) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            # Overwrite the key's old bytes in the file instead of leaving a free page.
            cursor.execute("PRAGMA secure_delete = ON")
            cursor.execute(
                f"INSERT INTO {DATA_KEY_TABLE} (run_id, data_key, forgotten_at) "
                "VALUES (?, NULL, ?) ON CONFLICT (run_id) DO UPDATE SET data_key = NULL, "
                f"forgotten_at = COALESCE({DATA_KEY_TABLE}.forgotten_at, excluded.forgotten_at)",
                (str(run_id), now.isoformat()),
            )
        # The page that held the key may still sit in the write-ahead log: move the log into
        # the file and empty it (best effort: a concurrent reader can hold part of it back).
        with self.datastore.get_connection(commit=True) as connection:
            connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")


class _PostgresKeys(DataKeys):
    def __init__(self, datastore: PostgresDatastore, cipher: Cipher | None) -> None:
        super().__init__(cipher)
        self.datastore = datastore
        schema = datastore.schema
        self.table = (
            sql.Identifier(schema, DATA_KEY_TABLE) if schema else sql.Identifier(DATA_KEY_TABLE)
        )

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (run_id uuid PRIMARY KEY, data_key bytea, "
                    "forgotten_at timestamptz)"
                ).format(self.table)
            )

    def create(self, run_id: UUID) -> bytes | None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} (run_id, data_key) VALUES (%s, %s) "
                    "ON CONFLICT (run_id) DO NOTHING"
                ).format(self.table),
                (run_id, self.new_key()),
            )
            cursor.execute(
                sql.SQL("SELECT data_key FROM {} WHERE run_id = %s").format(self.table),
                (run_id,),
            )
            return self.key_of(cursor.fetchone())

    def get(self, run_id: UUID) -> bytes | None:
        try:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    sql.SQL("SELECT data_key FROM {} WHERE run_id = %s").format(self.table),
                    (run_id,),
                )
                return self.key_of(cursor.fetchone())
        except (PersistenceError, psycopg.errors.UndefinedTable) as exc:
            if isinstance(exc, psycopg.errors.UndefinedTable) or isinstance(
                exc.__cause__, psycopg.errors.UndefinedTable
            ):
                return None  # opened with create=False before any run was erasable
            raise

    def destroy(self, run_id: UUID, *, now: datetime) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {} AS k (run_id, data_key, forgotten_at) VALUES (%s, NULL, %s) "
                    "ON CONFLICT (run_id) DO UPDATE SET data_key = NULL, "
                    "forgotten_at = COALESCE(k.forgotten_at, excluded.forgotten_at)"
                ).format(self.table),
                (run_id, now),
            )
        # The row's old version, key included, stays on disk as a dead tuple until a vacuum.
        with self.datastore.get_connection() as connection:  # autocommit: VACUUM needs it
            connection.execute(sql.SQL("VACUUM {}").format(self.table))
