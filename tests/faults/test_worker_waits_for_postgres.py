"""A worker started before its database waits for it, then works: no operator needed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from chaos import HERE, SQUIDMESH, PrivatePostgres
from fault_workflows import FourSteps

from squidmesh_es import SquidMesh


def test_a_worker_started_before_postgres_runs_steps_once_it_is_up(tmp_path: Path) -> None:
    cluster = PrivatePostgres()  # created, not started: nothing listens on its port yet
    log = tmp_path / "worker.log"
    try:
        with log.open("w") as stderr:
            worker = subprocess.Popen(
                [str(SQUIDMESH), "worker", "--import", "fault_workflows"]
                + ["--database-url", cluster.url],
                cwd=HERE,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                stderr=stderr,
            )
        try:
            deadline = time.monotonic() + 20
            while log.read_text().count("retrying in") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            cluster.start()
            with SquidMesh.open(cluster.url, workflows=[FourSteps]) as mesh:
                run_id = mesh.start(FourSteps, {"n": 1}).run_id
                deadline = time.monotonic() + 60
                while not mesh.get_run(run_id).is_terminal and time.monotonic() < deadline:
                    time.sleep(0.2)
                status = mesh.inspect_run(run_id).terminal_status
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        cluster.stop()

    text = log.read_text()
    assert status == "completed", text
    assert "Connection refused" in text and "Traceback" not in text
    assert worker.returncode == 0, text
