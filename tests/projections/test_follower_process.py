"""A separate follower process on Postgres: catches up on start, and again after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from projection_helpers import drain, start_runs, tables

from squidmesh_es import SquidMesh
from squidmesh_es.projections import Projections
from squidmesh_es.testing import ManualClock

pytestmark = pytest.mark.postgres_only

SQUIDMESH = Path(sys.executable).with_name("squidmesh")


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


@pytest.fixture
def follower(database_url: str) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SQUIDMESH_")}
        process = subprocess.Popen(
            [
                str(SQUIDMESH),
                "projections",
                "run",
                "--database-url",
                database_url,
                "--poll-seconds",
                "0.05",
            ],
            env=env,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def caught_up(projections: Projections) -> bool:
    return all(s.lag == 0 and s.state == "caught_up" for s in projections.status())


def test_a_restarted_follower_process_catches_up_with_its_backlog(
    mesh: SquidMesh, clock: ManualClock, follower: Callable[[], subprocess.Popen[bytes]]
) -> None:
    start_runs(mesh, clock, 5)
    observer = Projections(mesh)  # reads status and rows; never follows
    first = follower()
    wait_until(lambda: caught_up(observer))
    assert len(observer.list_runs()) == 5

    first.send_signal(signal.SIGKILL)  # no goodbye: the backlog piles up meanwhile
    first.wait(timeout=10)
    ids = start_runs(mesh, clock, 6)
    drain(mesh, clock)
    assert not caught_up(observer)

    second = follower()
    wait_until(lambda: caught_up(observer))
    built = tables(observer)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) == 0

    assert set(ids) <= {r.run_id for r in observer.list_runs(limit=100)}
    observer.rebuild()
    assert tables(observer) == built
    observer.close()
