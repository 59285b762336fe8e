"""Real worker processes: a worker killed mid-step, and several processes on one queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.runtime import SystemClock

from conftest import OpenMesh
from engine_workflows import Quick, SlowOne

HERE = Path(__file__).parent


def worker_env(call_log: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["SQUIDMESH_TEST_CALL_LOG"] = str(call_log)
    env.update(extra)
    return env


def applied_counts(mesh: SquidMesh, run_id: str) -> Counter[str]:
    return Counter(
        e.runnable_key  # type: ignore[attr-defined]
        for e in mesh.events.get(UUID(run_id))
        if type(e).__name__ == "RunnableApplied"
    )


@pytest.mark.shared_journal
def test_a_worker_killed_between_claim_and_completion_is_replaced_after_its_lease(
    open_mesh: OpenMesh, database_url: str, tmp_path: Path
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_id = mesh.start(SlowOne, {"seconds": 0.0}).run_id
    calls = tmp_path / "calls.log"
    doomed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from datetime import timedelta\n"
            "from squidmesh_es import SquidMesh\n"
            "from engine_workflows import SlowOne\n"
            f"mesh = SquidMesh.open({database_url!r}, workflows=[SlowOne])\n"
            "mesh.execute_next(owner_id='doomed', lease_for=timedelta(seconds=2))\n",
        ],
        env=worker_env(calls, SQUIDMESH_TEST_SLOW_SECONDS="60"),
    )
    try:
        deadline = time.monotonic() + 30
        while not (calls.exists() and calls.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls.read_text(), "the doomed worker never started the step"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)

        assert mesh.execute_next(owner_id="heir", lease_for=timedelta(seconds=2)) is None
        deadline = time.monotonic() + 30
        while not mesh.get_run(run_id).is_terminal and time.monotonic() < deadline:
            if mesh.execute_next(owner_id="heir") is None:
                time.sleep(0.1)
    finally:
        doomed.kill()

    assert mesh.get_run(run_id).terminal_status == "completed"
    counts = applied_counts(mesh, run_id)
    assert sorted(k.split(":")[1] for k in counts) == ["after_slow", "slow"]
    assert set(counts.values()) == {1}


@pytest.mark.postgres_only
def test_worker_processes_and_threads_never_run_a_leased_attempt_twice(
    open_mesh: OpenMesh, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = open_mesh(clock=SystemClock())
    run_ids = [mesh.start(Quick, {"order_id": f"o{i}"}).run_id for i in range(40)]
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("SQUIDMESH_TEST_CALL_LOG", str(calls))
    command = [
        sys.executable, "-m", "squidmesh_es.cli", "worker",
        "--database-url", database_url, "--import", "engine_workflows", "--concurrency", "2",
    ]  # fmt: skip
    workers = [
        subprocess.Popen(command, env=worker_env(calls), stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        for worker in workers:  # each is working before the runs can all be done without it
            assert worker.stderr is not None
            while " runs " not in (line := worker.stderr.readline()):
                assert line, "a worker process exited before it started working"
        with mesh.worker(concurrency=2, owner_id="in-process"):
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if all(mesh.get_run(r).is_terminal for r in run_ids):
                    break
                time.sleep(0.1)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30)[1] for worker in workers]

    assert all(mesh.get_run(r).terminal_status == "completed" for r in run_ids), outputs
    # Leases (30 s, extended by heartbeats) never expire here: every attempt runs once.
    lines = calls.read_text().splitlines()
    keys = Counter(line.split()[0] for line in lines)
    twice = [line for line in lines if keys[line.split()[0]] > 1]
    assert not twice
    assert len(keys) == 40 * 3
    assert all(w.returncode == 0 for w in workers), outputs
