"""docs/read-models.md: its example runs."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[3] / "docs" / "read-models.md"


def test_the_example_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)

    exec(compile(code, str(DOC), "exec"), {})
