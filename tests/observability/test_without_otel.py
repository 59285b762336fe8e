"""Without the ``otel`` extra the package imports and runs; and it leaves logging to its host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"

RUN_A_WORKFLOW = """
import time
from squidmesh_es import SquidMesh
from squidmesh_es.runtime import SystemClock, configure_telemetry
from otel_workflows import Mixed, Traced

configure_telemetry()
with SquidMesh.open("memory://", clock=SystemClock()) as mesh:
    done = mesh.start(Traced).run_id
    failed = mesh.start(Mixed).run_id
    with mesh.worker(owner_id="plain", concurrency=2):
        deadline = time.monotonic() + 30
        while not all(mesh.get_run(r).is_terminal for r in (done, failed)):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    cancelled = mesh.start(Traced).run_id
    mesh.cancel(cancelled)
    print(mesh.get_run(done).terminal_status, mesh.get_run(failed).terminal_status,
          mesh.get_run(cancelled).terminal_status, mesh.get_run(done).trace_context)
"""


def run(prelude: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)])}
    return subprocess.run(
        [sys.executable, "-c", prelude + RUN_A_WORKFLOW],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_package_runs_when_opentelemetry_cannot_be_imported() -> None:
    # None in sys.modules makes every ``import opentelemetry...`` raise ImportError
    done = run(
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "from squidmesh_es.runtime import _telemetry\n"
        "assert not _telemetry.AVAILABLE\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "failed", "cancelled", "None"]


def test_running_workflows_never_configures_the_hosts_logging() -> None:
    # the workflows log warnings (a retry) and errors (a failure); the root stays untouched
    done = run(
        "import atexit, logging\n"
        "def check():\n"
        "    root = logging.getLogger()\n"
        "    assert root.handlers == [] and root.level == logging.WARNING, root.handlers\n"
        "    print('root untouched')\n"
        "atexit.register(check)\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "root untouched"
    assert done.stderr == ""  # the package's own logger has a NullHandler, nothing more
