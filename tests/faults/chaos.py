"""A fault run: runs started through the public API, `squidmesh worker` processes killed at
random, and a private Postgres cluster restarted under them; then what the journal says.

Used by `test_faults.py` (small, bounded, in CI) and by ``benchmarks/soak.py`` (large).
Only public surfaces are used (``SquidMesh.open``, ``start``, ``get_run``, ``inspect_run``
and the ``squidmesh worker`` command), so the run keeps its meaning whatever the dispatch
internals become.

The Postgres cluster is the run's own: ``initdb`` into a temporary folder as the
``postgres`` user, on a free port, with its socket in that folder. The shared cluster is
never touched.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from squidmesh_es import SquidMesh
from squidmesh_es.errors import Conflict, SquidMeshError, StorageUnavailable
from squidmesh_es.workflow import Workflow

HERE = Path(__file__).parent
SQUIDMESH = Path(sys.executable).with_name("squidmesh")

DOCUMENTED_OUTAGE_ERRORS = {
    "eventsourcing.persistence.OperationalError",
    "eventsourcing.persistence.InterfaceError",
    "eventsourcing.persistence.InternalError",
    "psycopg.OperationalError",
    "psycopg_pool.PoolTimeout",
}
"""What a worker may log while the database restarts: the connection went away, nothing else.

Every error of ``squidmesh_es.errors`` is documented too (a typed error with a stable code).
"""

_FINAL_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout|Unavailable|Conflict\w*)):")


@dataclass
class ChaosConfig:
    """How big and how rough one fault run is."""

    runs: int = 300
    workers: int = 3
    concurrency: int = 4
    kill_every: tuple[float, float] = (2.0, 4.0)
    """Seconds between SIGKILLs of a random worker (which is started again at once)."""
    postgres_restarts: int = 1
    """Immediate restarts of the private cluster, the first while runs are still starting."""
    first_restart_seconds: float = 1.0
    restart_spacing_seconds: float = 10.0
    outage_seconds: float = 3.0
    """How long the cluster stays down at each restart (longer than the driver's retries)."""
    start_seconds: float = 6.0
    """Starts are spread over this long, so that some meet the first outage."""
    lease_seconds: float = 3.0
    heartbeat_seconds: float = 1.0
    step_seconds: float = 0.01
    deadline_seconds: float = 150.0
    seed: int = 18


@dataclass
class ChaosReport:
    """What the journal and the side-effect log say after a fault run."""

    runs: int
    completed: int
    lost: list[str]
    """Runs that did not reach a terminal status by the deadline."""
    failed: list[str]
    """Runs that ended other than completed."""
    duplicate_applications: list[str]
    """Runs in which a step's result was applied more than once."""
    duplicate_side_effects: dict[str, int]
    """Per step: attempts whose side effect happened more than once (at-least-once delivery
    of a killed worker's step; each step's ``idempotency_key`` lets a host deduplicate)."""
    kills: int
    postgres_restarts: int
    drain_seconds: float
    """From the first start to the moment every run was terminal (or the deadline)."""
    start_retries: Counter[str] = field(default_factory=Counter)
    """Documented errors a start met and was retried on, by code."""
    outage_errors: int = 0
    """Documented errors the workers logged (the database restarting under them)."""
    undocumented_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every run completed, none applied a step twice, no undocumented error."""
        return not (self.lost or self.failed or self.duplicate_applications) and not (
            self.undocumented_errors
        )

    def lines(self) -> list[str]:
        """The report as lines for people."""
        effects = ", ".join(f"{k}={v}" for k, v in self.duplicate_side_effects.items())
        return [
            f"runs:                   {self.runs} ({self.completed} completed)",
            f"lost runs:              {len(self.lost)}",
            f"failed runs:            {len(self.failed)}",
            f"duplicate applications: {len(self.duplicate_applications)}",
            f"duplicate side effects: {effects or 'none'}",
            f"worker SIGKILLs:        {self.kills}",
            f"postgres restarts:      {self.postgres_restarts}",
            f"drain time:             {self.drain_seconds:.1f} s",
            f"start retries:          {dict(self.start_retries) or 'none'}",
            f"worker outage errors:   {self.outage_errors} (documented)",
            f"undocumented errors:    {len(self.undocumented_errors)}",
        ]


class PrivatePostgres:
    """A throwaway Postgres cluster owned by this process (``initdb`` as ``postgres``)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="squidmesh-faults-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def start(self) -> PrivatePostgres:
        """Create the cluster and start it; returns once it accepts connections."""
        _as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._pg_ctl("start")
        return self

    def restart(self, outage_seconds: float = 0.0) -> None:
        """Stop at once, as a crash would (``-m immediate``), stay down, then start again."""
        _as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        time.sleep(outage_seconds)
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop the cluster and delete its folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                _as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _pg_ctl(self, action: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        _as_postgres(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
            "-w", "-t", "60", action,
        )  # fmt: skip


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started `PrivatePostgres`, stopped and deleted afterwards."""
    cluster = PrivatePostgres()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def run_chaos(config: ChaosConfig, cluster: PrivatePostgres, workdir: Path) -> ChaosReport:
    """Start ``config.runs`` runs while workers are killed and Postgres restarts; report."""
    rng = random.Random(config.seed)
    effects = workdir / "side-effects.log"
    workers = _Workers(config, cluster.url, workdir, effects)
    run_ids: list[str] = []
    report_errors: list[str] = []
    retries: Counter[str] = Counter()
    with SquidMesh.open(cluster.url, workflows=[_four_steps()]) as mesh:
        began = time.monotonic()
        starter = threading.Thread(
            target=_start_all,
            args=(mesh, config, run_ids, retries, report_errors),
        )
        workers.start_all()
        starter.start()
        kills, restarts = 0, 0
        restart_at = [
            began + config.first_restart_seconds + i * config.restart_spacing_seconds
            for i in range(config.postgres_restarts)
        ]
        next_kill = began + rng.uniform(*config.kill_every)
        open_runs: set[str] = set()
        checked = 0
        deadline = began + config.deadline_seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_kill:
                workers.kill_one(rng)
                kills += 1
                next_kill = now + rng.uniform(*config.kill_every)
            if restart_at and now >= restart_at[0]:
                restart_at.pop(0)
                cluster.restart(config.outage_seconds)
                restarts += 1
            open_runs.update(run_ids[checked:])
            checked = len(run_ids)
            open_runs -= _terminal(mesh, open_runs, report_errors)
            if not starter.is_alive() and not open_runs and not restart_at:
                break
            time.sleep(0.5)
        drain = time.monotonic() - began
        starter.join(timeout=30)
        workers.stop_all()
        report = _report(mesh, config, run_ids, effects, kills, restarts, drain)
    report.start_retries = retries
    documented, undocumented = workers.logged_errors()
    report.outage_errors = documented
    report.undocumented_errors = report_errors + undocumented
    return report


def _four_steps() -> type[Workflow]:
    sys.path.insert(0, str(HERE))
    from fault_workflows import FourSteps

    return FourSteps


def _start_all(
    mesh: SquidMesh,
    config: ChaosConfig,
    run_ids: list[str],
    retries: Counter[str],
    errors: list[str],
) -> None:
    """Start every run, retrying documented outages with the same key (so never twice)."""
    workflow = _four_steps()
    began = time.monotonic()
    for n in range(config.runs):
        time.sleep(max(0.0, began + config.start_seconds * n / config.runs - time.monotonic()))
        while True:
            try:
                run = mesh.start(workflow, {"n": n}, idempotency_key=f"fault-{n}")
            except (StorageUnavailable, Conflict) as exc:
                retries[exc.code] += 1
                time.sleep(0.2)
                continue
            except Exception as exc:  # noqa: BLE001 - the point is to find these
                errors.append(f"start {n}: {type(exc).__module__}.{type(exc).__name__}: {exc}")
                break
            run_ids.append(run.run_id)
            break


def _terminal(mesh: SquidMesh, run_ids: set[str], errors: list[str]) -> set[str]:
    done = set()
    for run_id in run_ids:
        try:
            if mesh.get_run(run_id).is_terminal:
                done.add(run_id)
        except StorageUnavailable:
            return done  # the database is restarting; look again later
        except Exception as exc:  # noqa: BLE001 - reading must not fail otherwise
            if not _documented(type(exc)):
                errors.append(f"get_run: {type(exc).__module__}.{type(exc).__name__}: {exc}")
            return done
    return done


def _report(
    mesh: SquidMesh,
    config: ChaosConfig,
    run_ids: list[str],
    effects: Path,
    kills: int,
    restarts: int,
    drain: float,
) -> ChaosReport:
    lost, failed, doubled = [], [], []
    completed = 0
    for run_id in run_ids:
        snap = mesh.inspect_run(run_id)
        if not snap.terminal:
            lost.append(run_id)
            continue
        if snap.terminal_status == "completed":
            completed += 1
        else:
            failed.append(run_id)
        steps = Counter(applied.step for applied in snap.applied_runnables)
        keys = Counter(snap.applied_runnable_keys)
        if any(n > 1 for n in steps.values()) or any(n > 1 for n in keys.values()):
            doubled.append(run_id)
    lost += [f"never started: {config.runs - len(run_ids)}"] if len(run_ids) < config.runs else []
    seen: Counter[tuple[str, str]] = Counter()
    if effects.exists():
        for line in effects.read_text().splitlines():
            key, step_name, _pid = line.split(" ")
            seen[(step_name, key)] += 1
    duplicates: Counter[str] = Counter()
    for (step_name, _key), times in seen.items():
        if times > 1:
            duplicates[step_name] += 1
    return ChaosReport(
        runs=config.runs,
        completed=completed,
        lost=lost,
        failed=failed,
        duplicate_applications=doubled,
        duplicate_side_effects={
            s: duplicates.get(s, 0) for s in ("reserve", "charge", "pack", "ship")
        },
        kills=kills,
        postgres_restarts=restarts,
        drain_seconds=drain,
    )


class _Workers:
    """``squidmesh worker`` processes, each logging to its own file."""

    def __init__(self, config: ChaosConfig, url: str, workdir: Path, effects: Path) -> None:
        self.config = config
        self.url = url
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            "SQUIDMESH_FAULT_LOG": str(effects),
            "SQUIDMESH_FAULT_STEP_SECONDS": str(config.step_seconds),
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start_all(self) -> None:
        for _ in range(self.config.workers):
            self.processes.append(self._spawn())

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        self.processes[index].kill()
        self.processes[index].wait()
        self.processes[index] = self._spawn()

    def stop_all(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logged_errors(self) -> tuple[int, list[str]]:
        """How many documented errors the workers logged, and every undocumented one."""
        documented, found = 0, []
        for log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                match = _FINAL_LINE.match(line)
                if "database unavailable: " in line or (match and _documented_name(match[1])):
                    documented += 1
                elif match:
                    found.append(f"{log.name}: {line[:300]}")
        return documented, found

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.workdir / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as stderr:
            return subprocess.Popen(
                [
                    str(SQUIDMESH), "worker", "--import", "fault_workflows",
                    "--database-url", self.url,
                    "--concurrency", str(self.config.concurrency),
                    "--lease-seconds", str(self.config.lease_seconds),
                    "--heartbeat-seconds", str(self.config.heartbeat_seconds),
                ],
                cwd=HERE,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )  # fmt: skip


def _documented(cls: type) -> bool:
    return issubclass(cls, SquidMeshError) or _documented_name(f"{cls.__module__}.{cls.__name__}")


def _documented_name(name: str) -> bool:
    if name in DOCUMENTED_OUTAGE_ERRORS or name.startswith("squidmesh_es.errors."):
        return True
    if name.startswith("psycopg.errors.") or name.startswith("psycopg.OperationalError"):
        return True  # the server went away mid-statement (AdminShutdown, ...)
    return False


def _as_postgres(*command: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *command],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
