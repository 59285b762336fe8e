"""Ordinary mistakes end every command with one line and a documented exit status.

Read-only commands never create a journal, and no output shows a connection password.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.cli._logging import configure_logging
from squidmesh_es.errors import JournalNotFound, StorageUnavailable
from squidmesh_es.redaction import RedactingFilter
from squidmesh_es.runtime import parse_database_url

from conftest import POSTGRES_BASE_URL

RUN = "00000000-0000-0000-0000-000000000001"
READ_ONLY = [
    ["list"],
    ["inspect", RUN],
    ["explain", RUN],
    ["graph", RUN],
    ["projections", "status"],
]
UNREACHABLE = "postgresql://app:hunter2@127.0.0.1:1/prod"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_failure(result: Result, code: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0].startswith(f"Error: {code}: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_a_read_only_command_on_a_missing_sqlite_journal_creates_nothing(
    command: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "journal.db"

    result = run(*command, "--database-url", f"sqlite:///{missing}")

    assert_one_line_failure(result, "journal_not_found")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres_only
@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_a_read_only_command_on_a_mistyped_postgres_schema_creates_nothing(
    command: list[str], backend: str
) -> None:
    schema = f"typo_{uuid.uuid4().hex[:12]}"

    result = run(*command, "--database-url", f"{POSTGRES_BASE_URL}?schema={schema}")

    assert_one_line_failure(result, "journal_not_found")
    with psycopg.connect(POSTGRES_BASE_URL) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    assert found is None


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_an_unreachable_database_is_one_line_without_its_password(command: list[str]) -> None:
    result = run(*command, "--database-url", UNREACHABLE)

    assert_one_line_failure(result, "storage_unavailable")
    assert "hunter2" not in result.output


def test_an_unsupported_url_scheme_is_one_line_also_as_json() -> None:
    plain = run("list", "--database-url", "mysql://app:hunter2@db/prod")
    as_json = run("list", "--json", "--database-url", "mysql://app:hunter2@db/prod")

    assert_one_line_failure(plain, "invalid_option")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_option"
    assert "hunter2" not in plain.output + as_json.output


def test_an_unknown_projection_name_is_a_refusal(tmp_path: Path) -> None:
    result = run("projections", "rebuild", "nosuch", "--database-url", f"sqlite:///{tmp_path}/j.db")

    assert_one_line_failure(result, "invalid_option")


def test_a_bad_option_value_is_a_usage_error(tmp_path: Path) -> None:
    result = run("list", "--limit", "-3", "--database-url", f"sqlite:///{tmp_path}/j.db")

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_open_without_create_refuses_a_missing_journal_and_reads_an_existing_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/journal.db"
    with pytest.raises(JournalNotFound):
        SquidMesh.open(url, create=False)
    assert list(tmp_path.iterdir()) == []

    SquidMesh.open(url).close()
    with SquidMesh.open(url, create=False) as mesh:
        assert mesh.recorder.max_notification_id() in (None, 0)


def test_storage_settings_never_show_the_password() -> None:
    settings = parse_database_url("postgresql://app:hunter2@db:5432/prod")

    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_opening_an_unreachable_database_is_storage_unavailable_without_its_password() -> None:
    with pytest.raises(StorageUnavailable) as refused:
        SquidMesh.open("postgresql://app:hunter2@127.0.0.1:1/prod?connect_timeout=1")

    assert refused.value.code == "storage_unavailable" and refused.value.backend == "postgres"
    assert "hunter2" not in str(refused.value)


def test_writing_commands_report_an_unreachable_database_in_one_line() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/prod?connect_timeout=1"

    result = run("cancel", RUN, "--database-url", url)

    assert_one_line_failure(result, "storage_unavailable")
    assert "hunter2" not in result.output


def test_the_cli_logging_redacts_every_record(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    configure_logging()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("squidmesh_es.test").info("dsn %s", "postgresql://a:hunter2@h/d")
    finally:
        for handler in root.handlers:
            for found in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(found)

    assert "postgresql://a:[REDACTED]@h/d" in caplog.text and "hunter2" not in caplog.text
