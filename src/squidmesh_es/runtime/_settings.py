"""Turning a database URL into the ``eventsourcing`` persistence settings we pass in."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from squidmesh_es.errors import (
    InvalidArgument,
    InvalidDatabaseUrl,
    JournalNotFound,
    StorageUnavailable,
)
from squidmesh_es.redaction import redact_text

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_PARTITION_LIMIT",
    "StorageSettings",
    "check_partition_limit",
    "create_location",
    "journal_env",
    "parse_database_url",
    "partition_limit_from_env",
    "partitions_from_env",
    "require_journal",
]

DEFAULT_DATABASE_URL = "sqlite:///squidmesh.db"
"""Used by ``SquidMesh.from_env`` when ``SQUIDMESH_DATABASE_URL`` is not set."""

POSTGRES_TIMEOUTS = {
    "lock_timeout": ("POSTGRES_LOCK_TIMEOUT", "10"),
    "statement_timeout": ("POSTGRES_STATEMENT_TIMEOUT", "30"),
    "idle_in_transaction_timeout": ("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "5"),
    "connect_timeout": ("POSTGRES_CONNECT_TIMEOUT", "10"),
}
"""URL option -> (library setting, default seconds); ``0`` turns a limit off.

The first three are server-side limits on every connection of the pool: a writer waits at
most ``lock_timeout`` for the events table (the library retries ten times), no statement
runs longer than ``statement_timeout``, and a transaction left idle is ended after
``idle_in_transaction_timeout``, so one stuck process cannot hold the journal hostage.
``connect_timeout`` bounds how long opening a connection (and waiting for one) takes.
"""

_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class StorageSettings:
    """Which backend a URL names, and the library settings that select it."""

    backend: str
    """``memory``, ``sqlite`` or ``postgres``."""
    env: dict[str, str] = field(repr=False)
    """``eventsourcing`` environment keys (without an application prefix). Left out of the
    repr: it holds the Postgres password."""
    postgres_schema: str | None = None
    """The Postgres schema the tables live in, created on open when missing."""


def parse_database_url(url: str) -> StorageSettings:
    """Parse ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``, ``postgresql://``.

    Postgres URLs take ``user:password@host:port/dbname`` and the query options ``schema``
    (lower-case letters, digits and ``_``), ``pool_size``, ``max_overflow`` and the timeouts
    of `POSTGRES_TIMEOUTS` in whole seconds.

    Raises:
        InvalidArgument: the URL names no supported backend or lacks a required part.
        InvalidDatabaseUrl: a part is unusable: a port or option that is not a number, a
            SQLite path that is a directory or another kind of file, an unsafe schema name.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidArgument("database_url", "expected memory://, sqlite:/// or postgresql://")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("memory", "popo"):
        return StorageSettings("memory", {"PERSISTENCE_MODULE": "squidmesh_es.runtime._memory"})
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return _postgres(url)
    raise InvalidArgument("database_url", "expected memory://, sqlite:/// or postgresql://")


def journal_env(url: str) -> dict[str, str]:
    """The ``eventsourcing`` settings of the journal at ``url``, as ``SquidMesh.open`` uses them.

    Give them to whatever points the library at the journal: a system runner
    (``MultiThreadedRunner(system(), env=journal_env(url))``), a ``ProjectionRunner``, or
    your own application's ``env``. They hold no application prefix, so every application
    of a runner reads them; the library's own keys you add (``CIPHER_KEY``,
    ``<APP>_SQLITE_DBNAME``, ...) keep their meaning. The Postgres ``schema`` of the URL is
    not created here: ``SquidMesh.open(url)`` creates it, once.

    Raises:
        InvalidArgument: the URL is not one of the supported forms.
    """
    return dict(parse_database_url(url).env)


def _sqlite(url: str) -> StorageSettings:
    path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
    if not path:
        raise InvalidArgument("database_url", "sqlite URLs look like sqlite:///path/to/file.db")
    path = unquote(path.split("?", 1)[0])
    if path == ":memory:":
        raise InvalidArgument("database_url", "use memory:// for an in-memory journal")
    file = Path(path).expanduser()
    _check_sqlite_file(file)
    return StorageSettings(
        "sqlite",
        {
            "PERSISTENCE_MODULE": "squidmesh_es.runtime._sqlite:SQLiteFactory",
            "SQLITE_DBNAME": str(file),
            "SQLITE_LOCK_TIMEOUT": "30",
        },
    )


def _check_sqlite_file(file: Path) -> None:
    """Refuse a path that cannot hold a SQLite journal (parsing creates nothing)."""
    if file.is_dir():
        raise InvalidDatabaseUrl(f"SQLite path {str(file)!r} is a directory")
    if file.exists():
        try:
            with file.open("rb") as existing:
                header = existing.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise InvalidDatabaseUrl(f"SQLite file {str(file)!r} cannot be read: {exc}") from None
        if header and header != _SQLITE_HEADER:
            raise InvalidDatabaseUrl(f"{str(file)!r} is not a SQLite database")
        return


def _postgres(url: str) -> StorageSettings:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise InvalidArgument("database_url", "postgresql URLs need a database name")
    try:
        port = parts.port or 5432
    except ValueError:
        raise InvalidDatabaseUrl("the port must be a number from 1 to 65535") from None
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    env = {
        "PERSISTENCE_MODULE": "squidmesh_es.runtime._postgres:PostgresFactory",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": _whole(options, "pool_size", "5", minimum=1),
        "POSTGRES_MAX_OVERFLOW": _whole(options, "max_overflow", "10", minimum=0),
    }
    for option, (key, default) in POSTGRES_TIMEOUTS.items():
        env[key] = _whole(options, option, default, minimum=0)
    schema = options.get("schema")
    if schema is not None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidDatabaseUrl(
                "schema must be 1-63 lower-case letters, digits or _, not starting with a digit"
            )
        env["POSTGRES_SCHEMA"] = schema
    return StorageSettings("postgres", env, postgres_schema=schema)


def _whole(options: Mapping[str, str], name: str, default: str, *, minimum: int) -> str:
    value = options.get(name, default)
    if not value.isdigit() or int(value) < minimum:
        raise InvalidDatabaseUrl(f"{name} must be a whole number of at least {minimum}")
    return str(int(value))


def database_url_from_env(environ: Mapping[str, str]) -> str:
    """``SQUIDMESH_DATABASE_URL`` from ``environ``, or the embedded SQLite default."""
    return environ.get("SQUIDMESH_DATABASE_URL") or DEFAULT_DATABASE_URL


DEFAULT_PARTITION_LIMIT = 4096
"""Live attempts past which a start doubles its queue's partitions (`SquidMesh.open`).

A partition's snapshot and a cold load of it cost O(its live attempts); 4,096 keeps one
under about 2 MB, and 256 partitions of it hold a backlog of a million runs."""


def check_partition_limit(limit: int | None) -> int | None:
    """Return ``limit`` if it is ``None`` (never grow) or a positive whole number.

    Raises:
        InvalidArgument: anything else.
    """
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgument("queue_partition_limit", "must be None or a positive whole number")
    return limit


def partitions_from_env(environ: Mapping[str, str]) -> int:
    """``SQUIDMESH_QUEUE_PARTITIONS`` from ``environ`` (default 1).

    Raises:
        InvalidArgument: the value is not a whole number.
    """
    value = environ.get("SQUIDMESH_QUEUE_PARTITIONS") or "1"
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument("SQUIDMESH_QUEUE_PARTITIONS", "must be a whole number") from None


def partition_limit_from_env(environ: Mapping[str, str]) -> int | None:
    """``SQUIDMESH_QUEUE_PARTITION_LIMIT`` from ``environ`` (default `DEFAULT_PARTITION_LIMIT`).

    A positive whole number, or ``none``: never grow.

    Raises:
        InvalidArgument: anything else.
    """
    value = (environ.get("SQUIDMESH_QUEUE_PARTITION_LIMIT") or "").strip()
    if not value:
        return DEFAULT_PARTITION_LIMIT
    if value.lower() == "none":
        return None
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise InvalidArgument(
            "SQUIDMESH_QUEUE_PARTITION_LIMIT", "must be a positive whole number or none"
        )
    return int(value)


def create_location(settings: StorageSettings) -> None:
    """Make the directory a SQLite journal file goes in; check a Postgres server answers.

    Parsing a URL creates nothing. The Postgres check connects once, so an unreachable
    server is `StorageUnavailable` before the library builds a connection pool for it.

    Raises:
        InvalidDatabaseUrl: the SQLite file's folder cannot be created.
        StorageUnavailable: the Postgres server cannot be reached or refuses the login.
    """
    if settings.backend == "sqlite":
        file = Path(settings.env["SQLITE_DBNAME"])
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidDatabaseUrl(f"cannot create the folder of {str(file)!r}: {exc}") from None
    elif settings.backend == "postgres":
        _query_postgres(settings, "SELECT 1", ())


def require_journal(settings: StorageSettings, *, events_table: str) -> None:
    """Check that a journal exists where ``settings`` point, creating nothing on the way.

    A read-only command on a mistyped path or schema must say so instead of leaving an
    empty journal behind. The memory backend always passes: there is nothing to create.

    Raises:
        JournalNotFound: no SQLite file with our tables, or no such table in the schema.
        StorageUnavailable: the database cannot be reached.
    """
    if settings.backend == "sqlite":
        _require_sqlite(Path(settings.env["SQLITE_DBNAME"]))
    elif settings.backend == "postgres":
        _require_postgres(settings, events_table)


def _require_sqlite(path: Path) -> None:
    if not path.is_file():
        raise JournalNotFound(location=str(path))
    try:
        # mode=ro never creates the file, and fails rather than writing.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stored_events'"
            ).fetchone()
    except sqlite3.Error as exc:
        raise StorageUnavailable(backend="sqlite", reason=redact_text(str(exc))) from None
    if found is None:
        raise JournalNotFound(location=str(path))


def _require_postgres(settings: StorageSettings, events_table: str) -> None:
    schema = settings.postgres_schema or "public"
    found = _query_postgres(
        settings,
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (schema, events_table),
    )
    if not found:
        dbname = settings.env["POSTGRES_DBNAME"]
        raise JournalNotFound(location=f"schema {schema!r} of database {dbname!r}")


def _query_postgres(settings: StorageSettings, query: str, params: tuple[str, ...]) -> bool:
    """Whether ``query`` returns a row, on a connection of its own (no pool is built)."""
    import psycopg

    env = settings.env
    try:
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
        ) as conn:
            return conn.execute(query, params).fetchone() is not None
    except psycopg.Error as exc:
        raise StorageUnavailable(backend="postgres", reason=redact_text(str(exc))) from None
