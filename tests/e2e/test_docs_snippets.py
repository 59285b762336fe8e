"""The operating guides run as written: their blocks, in order, as one script per page.

Python blocks share one namespace, the module ``docs_<page>`` (``docs_operations``), which is
importable while the page runs, so ``--import docs_operations`` registers the page's workflows
in the commands it shows. In ``console`` blocks, each ``$ squidmesh ...`` command is
run (in process, in the page's working directory) and the lines shown after it must be its
output, where a line ``...`` stands for any number of lines left out. ``$ export NAME=value``
sets a variable for the commands that follow. A block after ``<!-- not-run`` is skipped.
"""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"(<!-- not-run[^>]*-->\s*)?```(python|console)\n(.*?)```", re.S)
JOURNALS = {"operations.md": "operations.db"}
"""Pages that must leave a SQLite journal of this name in their working directory."""


def blocks(page: str) -> list[tuple[str, int, str]]:
    """(kind, line offset, text) of each block of ``page`` that is run."""
    text = (DOCS / page).read_text()
    return [
        (m.group(2), text.count("\n", 0, m.start(3)), m.group(3))
        for m in BLOCK.finditer(text)
        if not m.group(1)
    ]


def commands(block: str) -> list[tuple[str, list[str]]]:
    """Each ``$`` command of a console block with the lines shown after it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line.rstrip())
    return found


def shows(shown: list[str], output: str) -> bool:
    """Whether ``output`` is ``shown``, with each ``...`` line standing for any lines."""
    pattern = "".join(
        r"(?:.*\n)*?" if line == "..." else re.escape(line) + r"[ \t]*\n" for line in shown
    )
    return re.fullmatch(pattern, output if output.endswith("\n") else output + "\n") is not None


def run_console(block: str, env: dict[str, str]) -> None:
    for command, shown in commands(block):
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            env[name] = value
            continue
        program, *args = shlex.split(command)
        assert program == "squidmesh", command
        result = CliRunner().invoke(main, args, env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), command
        assert shows(shown, result.output), f"$ {command}\n{result.output}"


@pytest.mark.parametrize("page", ["running.md", "operations.md", "deploying.md"])
def test_page_runs_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = blocks(page)
    assert any(kind == "python" for kind, _, _ in found)
    module = types.ModuleType(f"docs_{page[:-3]}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    env: dict[str, str] = {}
    for kind, offset, text in found:
        if kind == "python":
            # Blank lines in front keep tracebacks pointing at the page's own line numbers.
            exec(compile("\n" * offset + text, str(DOCS / page), "exec"), namespace)
        else:
            run_console(text, env)
    if page in JOURNALS:
        assert (tmp_path / JOURNALS[page]).is_file()


def test_shown_output_may_leave_lines_out_only_where_it_says_so() -> None:
    output = "a\nb\nc\n"
    assert shows(["a", "b", "c"], output)
    assert shows(["...", "b", "..."], output)
    assert shows(["a", "...", "c"], output)
    assert not shows(["a", "c"], output)
    assert not shows(["b", "..."], output)
    assert not shows(["a", "b"], output)
