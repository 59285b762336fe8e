"""Backends for the contract suites: one ``open_mesh`` fixture over memory, SQLite and Postgres.

``--backend`` picks them: ``memory``, ``sqlite``, ``postgres``, a comma list, or ``all``
(default ``memory,sqlite``). When Postgres is selected it must be reachable: the run fails,
it never skips, because Postgres is the production path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.runtime import Clock
from squidmesh_es.testing import ManualClock

BACKENDS = ("memory", "sqlite", "postgres")
POSTGRES_BASE_URL = os.environ.get(
    "SQUIDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

OpenMesh = Callable[..., SquidMesh]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        default="memory,sqlite",
        help="journal backends for contract tests: memory, sqlite, postgres, a list, or all",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    raw = str(config.getoption("--backend"))
    names = list(BACKENDS) if raw == "all" else [b.strip() for b in raw.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown:
        raise pytest.UsageError(f"unknown backend(s): {', '.join(unknown)}")
    return names


def pytest_configure(config: pytest.Config) -> None:
    if "postgres" in selected_backends(config):
        _require_postgres()


def _require_postgres() -> None:
    import psycopg

    try:
        with psycopg.connect(_libpq(POSTGRES_BASE_URL), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise pytest.UsageError(
            f"Postgres backend selected but {POSTGRES_BASE_URL} is unreachable: {exc}"
        ) from exc


def _libpq(url: str) -> str:
    return url.split("?", 1)[0]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = selected_backends(metafunc.config)
        if metafunc.definition.get_closest_marker("postgres_only"):
            backends = [b for b in backends if b == "postgres"]
        if metafunc.definition.get_closest_marker("shared_journal"):
            backends = [b for b in backends if b != "memory"]
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty journal location for one test on ``backend``."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        yield f"{POSTGRES_BASE_URL}?schema={schema}"
        _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq(POSTGRES_BASE_URL), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def open_mesh(database_url: str, backend: str, clock: Clock) -> Iterator[OpenMesh]:
    """Open ``SquidMesh`` instances on the test's journal; all are closed afterwards.

    On memory, every call returns the same instance (there is no shared storage to reopen).
    """
    opened: list[SquidMesh] = []

    def open_(**options: object) -> SquidMesh:
        if backend == "memory" and opened:
            return opened[0]
        options.setdefault("clock", clock)
        mesh = SquidMesh.open(database_url, **options)  # type: ignore[arg-type]
        opened.append(mesh)
        return mesh

    yield open_
    for mesh in opened:
        mesh.close()


@pytest.fixture
def mesh(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh()
