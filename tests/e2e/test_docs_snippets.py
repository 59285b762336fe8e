"""The Python blocks of the operating guides run, in order, in one namespace per page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"(<!-- not-run[^>]*-->\s*)?```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", ["running.md"])
def test_page_runs_as_written(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (DOCS / page).read_text()
    blocks = [m.group(2) for m in BLOCK.finditer(text) if not m.group(1)]
    assert blocks
    namespace: dict[str, object] = {"__name__": f"docs_{page[:-3]}"}
    for code in blocks:
        exec(compile(code, str(DOCS / page), "exec"), namespace)
