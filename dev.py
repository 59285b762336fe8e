#!/usr/bin/env python3
"""Project tasks in one file, so a fresh clone needs only Python and pip.

    python3 dev.py demo    set everything up, run the main demo on a SQLite file
    python3 dev.py test    set everything up, run lint, types, layers and every test
                           (memory, SQLite and Postgres; Postgres must be reachable)

Extra arguments after `test` go to pytest, e.g. `python3 dev.py test -k claim`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
MAIN_DEMO = ROOT / "examples" / "main_demo.py"


def run(*argv: object) -> None:
    print("+", " ".join(str(a) for a in argv), flush=True)
    completed = subprocess.run([str(a) for a in argv], cwd=ROOT)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def ensure_environment() -> None:
    """Create .venv and install the project with its dev extras when pyproject changed."""
    if not PYTHON.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".squidmesh-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        run(
            PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[dev]"
        )
        stamp.write_text(wanted)


def demo(args: list[str]) -> None:
    ensure_environment()
    run(PYTHON, MAIN_DEMO, *args)


def test(args: list[str]) -> None:
    ensure_environment()
    code = [p for p in ("src", "tests", "examples", "benchmarks", "dev.py") if (ROOT / p).exists()]
    run(BIN / "ruff", "format", "--check", *code)
    run(BIN / "ruff", "check", *code)
    run(BIN / "mypy")
    run(BIN / "lint-imports")
    run(PYTHON, "-m", "pytest", "--backend=all", *args)


def main() -> None:
    tasks = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in tasks:
        print(__doc__)
        sys.exit(2)
    tasks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
