"""``squidmesh worker`` as a supervisor runs it: graceful SIGTERM, probes, Prometheus metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.errors import StorageUnavailable
from squidmesh_es.runtime._execution import claim_attempts
from squidmesh_es.runtime._probes import serve_probes

from otel_workflows import Sleepy, Traced

HERE = Path(__file__).parent
SQUIDMESH = Path(sys.executable).with_name("squidmesh")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


def start_worker(journal: str, *options: str, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **env, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [str(SQUIDMESH), "worker", "--import", "otel_workflows", "--database-url", journal]
        + list(options),
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_lets_the_step_in_hand_finish_then_exits_0(journal: str, tmp_path: Path) -> None:
    started = tmp_path / "started"
    with SquidMesh.open(journal) as mesh:
        run_id = mesh.start(Sleepy).run_id
    worker = start_worker(journal, SLOW_STEP_SECONDS="2", SLOW_STEP_STARTED=str(started))
    try:
        wait_for(started.exists)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()

    assert worker.returncode == 0, stderr
    assert "stopped after 1 steps" in stderr
    with SquidMesh.open(journal) as mesh:
        snapshot = mesh.inspect_run(run_id)
    assert snapshot.terminal_status == "completed"
    assert snapshot.context == {"slept": True}


def test_a_step_outlasting_the_grace_is_released_and_the_worker_exits_0(
    journal: str, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    with SquidMesh.open(journal) as mesh:
        mesh.start(Sleepy)
    worker = start_worker(
        journal,
        "--grace-seconds",
        "0.5",
        SLOW_STEP_SECONDS="60",
        SLOW_STEP_STARTED=str(started),
    )
    try:
        wait_for(started.exists)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        worker.kill()

    assert worker.returncode == 0, stderr
    assert took < 15, "the worker waited for the step instead of its grace"
    assert "still running after the 0.5 s grace; releasing their claims" in stderr
    with SquidMesh.open(journal, workflows=[Sleepy]) as mesh:
        # released, not left to its 30 s lease: another worker takes it over at once
        [taken] = claim_attempts(
            mesh,
            "default",
            owner_id="next",
            limit=1,
            lease_for=timedelta(seconds=30),
            now=mesh.now(),
        )
    assert taken.attempt.step == "nap" and taken.attempt.lease_expiries == 1


def test_probes_and_prometheus_metrics_over_http(journal: str, tmp_path: Path) -> None:
    health_port, metrics_port = free_port(), free_port()
    health_file = tmp_path / "alive"
    with SquidMesh.open(journal) as mesh:
        run_id = mesh.start(Traced).run_id
    worker = start_worker(
        journal,
        "--health-port",
        str(health_port),
        "--metrics-port",
        str(metrics_port),
        "--health-file",
        str(health_file),
        "--probe-host",
        "127.0.0.1",
    )
    try:
        with SquidMesh.open(journal) as mesh:
            wait_for(lambda: mesh.get_run(run_id).is_terminal)
        wait_for(health_file.exists)
        alive = get(f"http://127.0.0.1:{health_port}/healthz")
        ready = get(f"http://127.0.0.1:{health_port}/readyz")
        missing = get(f"http://127.0.0.1:{health_port}/nope")
        metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
        first_touch = health_file.stat().st_mtime
        wait_for(lambda: health_file.stat().st_mtime > first_touch, seconds=5)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        worker.kill()

    assert worker.returncode == 0, stderr
    assert alive[0] == 200 and json.loads(alive[1])["alive"] is True
    assert ready[0] == 200 and json.loads(ready[1])["ready"] is True
    assert missing[0] == 404
    assert metrics[0] == 200
    page = metrics[1]
    [completed] = [
        line
        for line in page.splitlines()
        if line.startswith("squidmesh_step_completed_total{") and 'squidmesh_step="second"' in line
    ]
    assert 'squidmesh_workflow="Traced"' in completed and completed.endswith(" 1.0")
    assert 'squidmesh_step_duration_seconds_bucket{le="0.005"' in page
    assert "squidmesh_claim_latency_seconds_count" in page
    assert "squidmesh_queue_depth" in page
    assert not health_file.exists(), "the health file goes with the worker"


def test_metrics_port_without_the_exporter_is_a_usage_error(journal: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['opentelemetry.exporter.prometheus'] = None; "
            "from squidmesh_es.cli import main; main()",
            "worker",
            "--import",
            "otel_workflows",
            "--database-url",
            journal,
            "--metrics-port",
            "9464",
        ],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "--metrics-port" in done.stderr and "otel extra" in done.stderr


@pytest.fixture
def unreachable(journal: str) -> Iterator[SquidMesh]:
    with SquidMesh.open(journal) as mesh:
        yield mesh


def test_readiness_fails_while_the_journal_cannot_be_reached_but_liveness_holds(
    unreachable: SquidMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = unreachable
    worker = mesh.worker(owner_id="w-probes")
    probes = serve_probes(worker, host="127.0.0.1", health_port=0)
    port = probes.port("health")
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 503  # not started yet
        with worker:
            wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200)

            def down(*args: object, **kwargs: object) -> object:
                raise StorageUnavailable(backend="sqlite", reason="database is down")

            monkeypatch.setattr(mesh, "get_queue", down)
            wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 503)
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            monkeypatch.undo()
            wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200)
    finally:
        probes.close()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--grace-seconds", "-1"], "--grace-seconds"),
        (["--health-port", "70000"], "--health-port"),
        (["--metrics-port", "-5"], "--metrics-port"),
    ],
)
def test_bad_probe_options_exit_2_before_anything_is_opened(
    args: list[str], option: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    result = CliRunner().invoke(
        main,
        ["worker", "--import", "otel_workflows", "--database-url", f"sqlite:///{journal}", *args],
    )

    assert result.exit_code == 2
    assert option in result.output
    assert not journal.exists()


def test_a_taken_health_port_is_an_error_not_a_traceback(journal: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker(journal, "--health-port", str(port), "--probe-host", "127.0.0.1")
        _, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 1
    assert "Error: cannot serve the probes on 127.0.0.1" in stderr
    assert "Traceback" not in stderr
