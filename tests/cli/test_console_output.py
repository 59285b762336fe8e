"""Tables and progress: colour and live display on a terminal only, plain text when piped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

HERE = Path(__file__).parent
ESCAPE = "\x1b["
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[25])[;m]")
BOX = re.compile("[\u2500-\u257f]")
PIPED = {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None, "TERM": "xterm"}
TERMINAL = {**PIPED, "FORCE_COLOR": "1"}


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(HERE))
    from cli_workflows import CliRouted

    url = f"sqlite:///{tmp_path / 'console.db'}"
    with SquidMesh.open(url, workflows=[CliRouted]) as mesh:
        for i in range(3):
            mesh.start(CliRouted, {"order_id": f"o-{i}", "amount": 500})
        mesh.execute_next(owner_id="console-worker")
    return url


def invoke(url: str, env: dict[str, str | None], *args: str) -> Result:
    result = CliRunner(env=env).invoke(main, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(
    "command", [("list",), ("projections", "status"), ("workers", "list", "--all")]
)
def test_piped_tables_are_plain_columns(journal: str, command: tuple[str, ...]) -> None:
    out = invoke(journal, PIPED, *command).stdout

    assert ESCAPE not in out and not BOX.search(out)
    lines = out.splitlines()
    assert lines and all(line == line.rstrip() for line in lines)


def test_piped_run_list_has_one_line_per_run_under_a_header(journal: str) -> None:
    lines = invoke(journal, PIPED, "list").stdout.splitlines()

    assert lines[0].split() == ["RUN", "WORKFLOW", "QUEUE", "STATUS", "STARTED"]
    assert len(lines) == 4
    assert all(line.split()[1:4] == ["CliRouted", "default", "running"] for line in lines[1:])


def test_on_a_terminal_statuses_are_coloured_and_the_header_ruled(journal: str) -> None:
    out = invoke(journal, TERMINAL, "list").stdout

    assert COLOUR.search(out)
    assert BOX.search(out)
    assert out.count("CliRouted") == 3


def test_no_color_keeps_the_terminal_table_without_colour(journal: str) -> None:
    out = invoke(journal, {**TERMINAL, "NO_COLOR": "1"}, "list").stdout

    assert not COLOUR.search(out)
    assert out.count("CliRouted") == 3


def test_recover_shows_a_spinner_on_a_terminal_only(journal: str) -> None:
    piped = invoke(journal, PIPED, "recover")
    terminal = invoke(journal, TERMINAL, "recover")

    assert piped.stderr == ""
    assert "recovering" in terminal.stderr
    assert piped.stdout == terminal.stdout  # the report itself is the same
