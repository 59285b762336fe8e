"""``squidmesh --version`` names the installed package version, so a bug report can quote it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner

from squidmesh_es.cli import main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_prints_the_package_version_and_exits_0() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]

    result = CliRunner().invoke(main, ["--version"])

    assert result.exit_code == 0
    assert result.output == f"squidmesh, version {declared}\n"
