"""Python blocks in README.md run as written (a block after ``<!-- not-run`` is skipped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"(<!-- not-run[^>]*-->\s*)?```python\n(.*?)```", re.S)


def runnable_blocks() -> list[str]:
    return [m.group(2) for m in BLOCK.finditer(README.read_text()) if not m.group(1)]


def test_readme_has_runnable_python() -> None:
    assert runnable_blocks()


@pytest.mark.parametrize("code", runnable_blocks())
def test_readme_python_block_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
