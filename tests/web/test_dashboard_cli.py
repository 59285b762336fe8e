"""``squidmesh dashboard``: its refusals, and a real server started from the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

from web_workflows import WebRefund

HERE = Path(__file__).parent


def test_controls_need_a_token_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    result = CliRunner().invoke(
        main,
        ["dashboard", "--database-url", url, "--enable-controls"],
        env={"SQUIDMESH_DASHBOARD_TOKEN": ""},
    )

    assert result.exit_code == 2
    assert "--enable-controls needs a token in SQUIDMESH_DASHBOARD_TOKEN" in result.output


def test_the_command_is_listed_with_its_options() -> None:
    result = CliRunner().invoke(main, ["dashboard", "--help"])

    assert result.exit_code == 0
    for option in ("--database-url", "--host", "--port", "--import", "--enable-controls"):
        assert option in result.output


@pytest.mark.parametrize("controls", [False, True])
def test_squidmesh_dashboard_serves_the_journal_on_localhost(
    tmp_path: Path, controls: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with SquidMesh.open(url, workflows=[WebRefund]) as mesh:
        run_id = mesh.start(WebRefund, {"order_id": "A-1"}).run_id
        mesh.drain()
    port = _free_port()
    env = {**os.environ, "SQUIDMESH_DASHBOARD_TOKEN": "tok"}
    args = [sys.executable, "-m", "squidmesh_es.cli", "dashboard", "--database-url", url]
    args += ["--port", str(port), "--import", "web_workflows"]
    args += ["--enable-controls"] if controls else []
    server = subprocess.Popen(
        args, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        runs = _get(f"http://127.0.0.1:{port}/", server)
        run = httpx.get(f"http://127.0.0.1:{port}/runs/{run_id}")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)

    assert runs.status_code == 200 and run_id in runs.text
    assert run.status_code == 200 and 'data-node="pay"' in run.text  # edges need the import
    assert ('id="control-approve"' in run.text) is controls
    mode = "controls enabled" if controls else "read-only"
    assert f"dashboard on http://127.0.0.1:{port}/ ({mode}, scope operator)" in err
    assert "tok" not in err.replace("http", "")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str, server: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {server.communicate()}") from None
            time.sleep(0.1)
