"""docs/dashboard.md's hosting example runs as written, mounted under its prefix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

PAGE = Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"


def test_the_hosting_example_mounts_the_dashboard_behind_the_hosts_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [example] = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_dashboard"}
    exec(compile(example, str(PAGE), "exec"), namespace)

    with TestClient(namespace["app"], base_url="http://127.0.0.1") as client:
        runs = client.get("/ops/")
        queues = client.get("/ops/queues")

    assert runs.status_code == 200 and "controls on" in runs.text
    assert 'data-queue="payments"' in queues.text
    assert (tmp_path / "squidmesh.db").exists()
