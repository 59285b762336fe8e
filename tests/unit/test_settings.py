from __future__ import annotations

from pathlib import Path

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument, InvalidDatabaseUrl, StorageUnavailable
from squidmesh_es.runtime import DEFAULT_DATABASE_URL, parse_database_url, partition_limit_from_env
from squidmesh_es.runtime._settings import DEFAULT_PARTITION_LIMIT, create_location


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


@pytest.mark.parametrize(
    ("value", "limit"), [(None, DEFAULT_PARTITION_LIMIT), ("", DEFAULT_PARTITION_LIMIT),
                         ("20000", 20_000), ("None", None), (" none ", None)],
)  # fmt: skip
def test_the_partition_limit_comes_from_the_environment(
    value: str | None, limit: int | None
) -> None:
    environ = {} if value is None else {"SQUIDMESH_QUEUE_PARTITION_LIMIT": value}

    assert partition_limit_from_env(environ) == limit
    with SquidMesh.from_env({"SQUIDMESH_DATABASE_URL": "memory://", **environ}) as mesh:
        assert mesh.queue_partition_limit == limit


@pytest.mark.parametrize("value", ["0", "-5", "2.5", "lots", "١٢"])
def test_a_bad_partition_limit_in_the_environment_is_refused(value: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        SquidMesh.from_env({"SQUIDMESH_DATABASE_URL": "memory://",
                            "SQUIDMESH_QUEUE_PARTITION_LIMIT": value})  # fmt: skip

    assert refused.value.option == "SQUIDMESH_QUEUE_PARTITION_LIMIT"


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


def test_postgres_timeouts_have_documented_defaults_and_url_options() -> None:
    defaults = parse_database_url("postgresql://h/db").env
    chosen = parse_database_url(
        "postgresql://h/db?lock_timeout=2&statement_timeout=0&idle_in_transaction_timeout=7"
    ).env

    assert (
        defaults["POSTGRES_LOCK_TIMEOUT"],
        defaults["POSTGRES_STATEMENT_TIMEOUT"],
        defaults["POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT"],
    ) == ("10", "30", "5")
    assert (
        chosen["POSTGRES_LOCK_TIMEOUT"],
        chosen["POSTGRES_STATEMENT_TIMEOUT"],
        chosen["POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT"],
    ) == ("2", "0", "7")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h:abc/db",
        "postgresql://h:99999/db",
        "postgresql://h/db?lock_timeout=soon",
        "postgresql://h/db?pool_size=0",
        'postgresql://h/db?schema=a"b',
        "postgresql://h/db?schema=Orders",
        f"postgresql://h/db?schema={'s' * 64}",
    ],
)
def test_unusable_postgres_url_parts_are_refused_before_anything_is_created(url: str) -> None:
    with pytest.raises(InvalidDatabaseUrl) as caught:
        SquidMesh.open(url)

    assert caught.value.code == "invalid_database_url"
    assert caught.value.option == "database_url"


def test_a_sqlite_path_that_is_a_directory_or_another_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a journal")

    with pytest.raises(InvalidDatabaseUrl, match="is a directory"):
        SquidMesh.open(f"sqlite:///{tmp_path}")
    with pytest.raises(InvalidDatabaseUrl, match="not a SQLite database"):
        SquidMesh.open(f"sqlite:///{tmp_path / 'notes.txt'}")
    with pytest.raises(InvalidDatabaseUrl, match="cannot create the folder"):
        SquidMesh.open(f"sqlite:///{tmp_path / 'notes.txt' / 'journal.db'}")

    assert (tmp_path / "notes.txt").read_text() == "not a journal"


def test_an_empty_sqlite_file_becomes_a_journal(tmp_path: Path) -> None:
    (tmp_path / "new.db").touch()

    with SquidMesh.open(f"sqlite:///{tmp_path / 'new.db'}") as mesh:
        assert mesh.storage is not None and mesh.storage.backend == "sqlite"


def test_an_unreachable_postgres_is_a_typed_error_with_the_real_cause() -> None:
    with pytest.raises(StorageUnavailable) as caught:
        SquidMesh.open("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2")

    assert caught.value.code == "storage_unavailable"
    assert "refused" in caught.value.reason.lower()
