"""Turning a database URL into the ``eventsourcing`` persistence settings we pass in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from squidmesh_es.errors import InvalidArgument

__all__ = ["DEFAULT_DATABASE_URL", "StorageSettings", "parse_database_url"]

DEFAULT_DATABASE_URL = "sqlite:///squidmesh.db"
"""Used by ``SquidMesh.from_env`` when ``SQUIDMESH_DATABASE_URL`` is not set."""


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

    Postgres URLs take ``user:password@host:port/dbname`` and the query options ``schema``,
    ``pool_size``, ``max_overflow``, ``lock_timeout`` (seconds) and ``connect_timeout``.

    Raises:
        InvalidArgument: the URL names no supported backend or lacks a required part.
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
    raise InvalidArgument("database_url", "expected memory://, sqlite:/// or postgresql://")


def _sqlite(url: str) -> StorageSettings:
    path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
    if not path:
        raise InvalidArgument("database_url", "sqlite URLs look like sqlite:///path/to/file.db")
    path = unquote(path.split("?", 1)[0])
    if path == ":memory:":
        raise InvalidArgument("database_url", "use memory:// for an in-memory journal")
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return StorageSettings(
        "sqlite",
        {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(Path(path).expanduser()),
            "SQLITE_LOCK_TIMEOUT": "30",
        },
    )


def _postgres(url: str) -> StorageSettings:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise InvalidArgument("database_url", "postgresql URLs need a database name")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or os.environ.get("USER", "postgres")),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # A stuck writer surfaces as an error instead of a hang (the library waits forever).
        "POSTGRES_LOCK_TIMEOUT": options.get("lock_timeout", "10"),
        "POSTGRES_CONNECT_TIMEOUT": options.get("connect_timeout", "10"),
        "POSTGRES_POOL_SIZE": options.get("pool_size", "5"),
        "POSTGRES_MAX_OVERFLOW": options.get("max_overflow", "10"),
    }
    schema = options.get("schema")
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    return StorageSettings("postgres", env, postgres_schema=schema)


def database_url_from_env(environ: Mapping[str, str]) -> str:
    """``SQUIDMESH_DATABASE_URL`` from ``environ``, or the embedded SQLite default."""
    return environ.get("SQUIDMESH_DATABASE_URL") or DEFAULT_DATABASE_URL
