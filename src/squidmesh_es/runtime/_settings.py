"""Turning a database URL into the ``eventsourcing`` persistence settings we pass in."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from squidmesh_es.errors import InvalidArgument, InvalidDatabaseUrl

__all__ = ["DEFAULT_DATABASE_URL", "StorageSettings", "parse_database_url"]

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
    env: dict[str, str]
    """``eventsourcing`` environment keys (without an application prefix)."""
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
        return StorageSettings("memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"})
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return _postgres(url)
    raise InvalidArgument("database_url", f"unsupported scheme {scheme!r}")


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
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(file),
            "SQLITE_LOCK_TIMEOUT": "30",
        },
    )


def _check_sqlite_file(file: Path) -> None:
    """Refuse a path that cannot hold a SQLite journal; create its folder when missing."""
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
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidDatabaseUrl(f"cannot create the folder of {str(file)!r}: {exc}") from None


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
