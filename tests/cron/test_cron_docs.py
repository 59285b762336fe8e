"""The Python blocks of docs/cron.md run as written, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cron.md"
BLOCK = re.compile(r"(<!-- not-run[^>]*-->\s*)?```python\n(.*?)```", re.S)


def blocks() -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(PAGE.read_text()) if not m.group(1)]


def test_the_page_has_python_blocks() -> None:
    assert len(blocks()) >= 4


def test_the_cron_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_cron"}
    for code in blocks():
        exec(compile(code, str(PAGE), "exec"), namespace)
