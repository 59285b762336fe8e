"""``squidmesh scheduler`` as a process: it starts due runs and stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

HERE = Path(__file__).resolve().parent
STARTED = re.compile(r"cron started run_id=(\S+) workflow=cron_tests\.minute_tick")


def wait_until(condition: Callable[[], bool], *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_the_scheduler_command_is_registered() -> None:
    result = CliRunner().invoke(main, ["scheduler", "--help"])

    assert result.exit_code == 0
    assert "--catch-up-seconds" in result.output


def test_an_import_without_workflows_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["scheduler", "--import", "json"])

    assert result.exit_code == 2


def test_scheduler_process_starts_due_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "squidmesh_es.cli",
            "scheduler",
            "--import",
            "cron_workflows",
            "--database-url",
            url,
            "--interval-seconds",
            "0.1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")))
    reader.start()
    try:
        wait_until(lambda: any(STARTED.search(line) for line in lines))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(10)

    output = "".join(lines)
    assert "scheduler evaluates" in output
    assert "scheduler stopped" in output
    run_ids = STARTED.findall(output)
    with SquidMesh.open(url) as mesh:
        snapshot = mesh.inspect_run(run_ids[0])
    assert snapshot.trigger == "every_minute"
    assert snapshot.context["schedule"]["intended_window"]["start_at"].endswith(":00Z")
