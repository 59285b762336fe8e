"""``squidmesh worker`` refuses bad options in one line and waits out a database that is down."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es.cli import main

SQUIDMESH = Path(sys.executable).with_name("squidmesh")


@pytest.mark.parametrize(
    ("args", "option", "reason"),
    [
        (["--queue", "bad queue!"], "--queue", "must match"),
        (["--concurrency", "0"], "--concurrency", "positive integer"),
        (["--lease-seconds", "0"], "--lease-seconds", "positive"),
        (["--lease-seconds", "nan"], "--lease-seconds", "finite number"),
        (["--heartbeat-seconds", "0.01"], "--heartbeat-seconds", "at least 50 ms"),
        (["--heartbeat-seconds", "400"], "--heartbeat-seconds", "shorter than lease"),
        (["--batch-window-ms", "-1"], "--batch-window-ms", "from 0 to 1 s"),
        (["--batch-window-ms", "5000"], "--batch-window-ms", "from 0 to 1 s"),
        (["--batch-window-ms", "nan"], "--batch-window-ms", "finite number"),
        (["--database-url", "postgresq://h/db"], "--database-url", "expected memory://"),
        (["--database-url", "postgresql://h:5o32/db"], "--database-url", "port"),
    ],
)
def test_bad_options_exit_2_with_one_line_before_anything_is_opened(
    args: list[str], option: str, reason: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    result = CliRunner().invoke(
        main,
        ["worker", "--import", "cli_workflows", "--database-url", f"sqlite:///{journal}", *args],
    )

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: Invalid value for {option}: ")
    assert reason in lines[0]
    assert not journal.exists()


def test_a_worker_started_while_the_database_is_down_waits_and_logs_why(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "worker.log"
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=1"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [str(SQUIDMESH), "worker", "--import", "cli_workflows", "--database-url", url],
            cwd=Path(__file__).parent,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            stderr=stderr,
        )
        deadline = time.monotonic() + 20
        while log.read_text().count("retrying in") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)

    text = log.read_text()
    waits = [float(w) for w in re.findall(r"retrying in ([0-9.]+) s", text)]
    assert worker.returncode == 0, text
    assert "Connection refused" in text and "Traceback" not in text
    assert waits[:3] == [0.5, 1.0, 2.0]
    assert "stopped before the database could be reached" in text
