"""A journal that cannot be opened ends any command with its code in one line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es.cli import main


@pytest.mark.parametrize("command", [["list"], ["projections", "status"]])
def test_a_file_that_is_not_a_journal_is_refused_with_its_code(
    command: list[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal")

    result = CliRunner().invoke(main, [*command, "--database-url", f"sqlite:///{notes}"])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: invalid_database_url: invalid database_url: '{notes}' is not a SQLite database"
    ]
    assert notes.read_text() == "not a journal"


def test_an_unreachable_database_is_refused_with_the_real_cause() -> None:
    url = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2"

    result = CliRunner().invoke(main, ["list", "--database-url", url])

    assert result.exit_code == 1
    assert result.output.startswith("Error: storage_unavailable: ")
    assert "refused" in result.output.lower()
    assert result.exception is None or isinstance(result.exception, SystemExit)
