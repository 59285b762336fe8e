from __future__ import annotations

from pathlib import Path

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.runtime import DEFAULT_DATABASE_URL, parse_database_url
from squidmesh_es.runtime._settings import create_location


def test_memory_url_selects_the_in_memory_store() -> None:
    settings = parse_database_url("memory://")

    assert settings.backend == "memory"
    assert settings.env["PERSISTENCE_MODULE"] == "squidmesh_es.runtime._memory"


def test_sqlite_url_names_a_relative_or_absolute_file(tmp_path: Path) -> None:
    relative = parse_database_url("sqlite:///journal.db")
    absolute = parse_database_url(f"sqlite:///{tmp_path}/sub/journal.db")

    assert relative.env["SQLITE_DBNAME"] == "journal.db"
    assert absolute.env["SQLITE_DBNAME"] == f"{tmp_path}/sub/journal.db"
    assert not (tmp_path / "sub").exists()


def test_create_location_makes_the_directory_of_a_sqlite_file(tmp_path: Path) -> None:
    create_location(parse_database_url(f"sqlite:///{tmp_path}/sub/journal.db"))

    assert (tmp_path / "sub").is_dir()


def test_postgres_url_carries_credentials_schema_and_pool_options() -> None:
    settings = parse_database_url(
        "postgresql://app:s%40cret@db.internal:6543/orders?schema=wf&pool_size=8&lock_timeout=3"
    )

    assert settings.backend == "postgres" and settings.postgres_schema == "wf"
    env = settings.env
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("app", "s@cret")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.internal",
        "6543",
        "orders",
    )
    assert env["POSTGRES_SCHEMA"] == "wf" and env["POSTGRES_POOL_SIZE"] == "8"
    assert env["POSTGRES_LOCK_TIMEOUT"] == "3"


@pytest.mark.parametrize(
    "url", ["", "nonsense", "mysql://h/db", "sqlite://", "sqlite:///:memory:", "postgresql://h"]
)
def test_unsupported_urls_are_refused_with_a_typed_error(url: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_database_url(url)

    assert caught.value.code == "invalid_option"


def test_from_env_reads_only_squidmesh_keys(tmp_path: Path) -> None:
    environ = {
        "SQUIDMESH_DATABASE_URL": f"sqlite:///{tmp_path}/env.db",
        "SQUIDMESH_QUEUE": "billing",
        "PERSISTENCE_MODULE": "eventsourcing.postgres",  # a host's unrelated setting
    }

    with SquidMesh.from_env(environ) as mesh:
        assert mesh.storage is not None and mesh.storage.backend == "sqlite"
        assert mesh.default_queue == "billing"
        assert mesh.get_queue().queue == "billing"
    assert (tmp_path / "env.db").exists()


def test_from_env_defaults_to_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with SquidMesh.from_env({}) as mesh:
        assert mesh.storage is not None and mesh.storage.backend == "sqlite"

    assert DEFAULT_DATABASE_URL == "sqlite:///squidmesh.db"
    assert (tmp_path / "squidmesh.db").exists()


def test_invalid_default_queue_name_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        SquidMesh.open("memory://", queue="bad queue!")
