"""docs/tools.md stays true: its Python blocks run, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"


def test_the_doc_snippets_run_in_order() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    namespace: dict[str, object] = {"__name__": "doc_snippet"}

    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)

    assert len(blocks) == 2
