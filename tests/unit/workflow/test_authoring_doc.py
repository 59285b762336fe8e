"""docs/workflow-authoring.md stays true: excerpts match the examples and snippets run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "workflow-authoring.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
EXCERPTS = [block for block in BLOCKS if block.startswith("# examples/")]
SNIPPETS = [block for block in BLOCKS if not block.startswith("# examples/")]


def test_the_doc_has_excerpts_and_snippets() -> None:
    assert len(EXCERPTS) >= 10 and len(SNIPPETS) >= 5


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda b: b.splitlines()[1][:40])
def test_excerpt_is_verbatim_from_its_example(block: str) -> None:
    marker, _, body = block.partition("\n")
    source = (ROOT / marker.removeprefix("# ")).read_text()

    assert body in source


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.splitlines()[0][:40])
def test_snippet_runs(snippet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))

    exec(compile(snippet, str(DOC), "exec"), {"__name__": "doc_snippet"})
