"""The README's demo command runs as written, in a real process, on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_main_demo_recovers_both_payments_on_a_sqlite_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQUIDMESH_")}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "main_demo.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("status=completed") == 2
    assert "check_gateway_status   error -> retry" in completed.stdout
    assert "issue_gateway_credit   ok    -> complete" in completed.stdout
    assert (tmp_path / "squidmesh.db").exists()
