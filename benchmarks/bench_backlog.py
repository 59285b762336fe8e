"""Backlog benchmark: does a step cost the same with 100 or 100,000 runs queued?

For each backend and backlog size N, a fresh journal gets N runs of the three-step
benchmark workflow (``bench_engine.ThreeSteps``), started in transactions of ``--batch``
starts each. Then, for each worker shape, a worker executes a window of steps while the
backlog stays about N (after each window the runs that ended are replaced), and prints:

- ``starts/s``: runs started per second while building the backlog (batched starts);
- ``steps/s``: steps whose outcome became durable per second during the window;
- ``commits/step``: committed write transactions of the worker per step;
- ``cpu ms/step``: CPU time of the worker process(es) per step (threads and the background
  snapshot writer included, the database server not): unlike steps/s, it barely moves when
  other programs load the machine, so it is the figure to compare across backlogs;
- ``run p50/p99``: per run that finished in the window, from its first claim to its last
  step's durable outcome, in ms: how long a run under way waits for its own next steps
  (with a FIFO queue it would wait behind the whole backlog);
- ``snapshot``: the size of the queue's snapshot at N (JSON bytes as stored) and the time a
  cold process takes to load the queue (snapshot plus the events after it); with
  ``--partitions K``, of its largest partition (each command loads one partition).

Worker shapes are ``--threads`` (one process, a worker of that many threads) and, on
Postgres, ``--processes`` (that many worker processes of ``--process-threads`` threads).
``--partitions K`` starts the backlog spread over K queue partitions; ``--partition-limit``
sets when the queue grows more (``none``: one aggregate per partition, whatever the size).

    python benchmarks/bench_backlog.py                               # the full matrix
    python benchmarks/bench_backlog.py --backlogs 100,1000 --backends memory --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench_engine import (
    DEFAULT_POSTGRES,
    STEPS_PER_RUN,
    BenchMesh,
    Recorder,
    ThreeSteps,
    database,
    percentile,
    postgres_available,
)

from squidmesh_es.domain import DispatchQueue
from squidmesh_es.errors import Conflict
from squidmesh_es.runtime import DEFAULT_PARTITION_LIMIT

IDLE = (timedelta(milliseconds=2), timedelta(milliseconds=20))


class RunClock(Recorder):
    """`Recorder` that also notes each run's first claim, for run latencies."""

    def __init__(self, expected_steps: int = 0) -> None:
        super().__init__(expected_steps)
        self.first_claim: dict[str, float] = {}
        self.last_done: dict[str, float] = {}
        self.closed: set[str] = set()
        self.t0 = time.perf_counter()
        self.worker_commits = 0
        self.cpu_seconds = 0.0

    def observe(self, at: float, events: Sequence[Any]) -> None:
        with self.lock:
            for event in events:
                if isinstance(event, DispatchQueue.AttemptClaimed):
                    self.first_claim.setdefault(event.runnable_key.split(":")[0], at)
                elif isinstance(event, DispatchQueue.AttemptCompleted):
                    self.last_done[event.runnable_key.split(":")[0]] = at
                elif isinstance(event, DispatchQueue.RunClosed):
                    self.closed.add(event.run_id)

    def run_latencies_ms(self) -> list[float]:
        """First claim to last durable step, for each run that ended while watched."""
        return [
            (self.last_done[r] - self.first_claim[r]) * 1000.0
            for r in self.closed
            if r in self.first_claim and r in self.last_done
        ]


class BacklogMesh(BenchMesh):
    """`BenchMesh` that feeds a `RunClock` with each committed event and counts conflicts."""

    clock_recorder: RunClock | None = None
    conflicts = 0
    """Commits refused because an aggregate moved on (each one is decided again)."""

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        watched = self.clock_recorder
        events = [e for o in objs for e in getattr(o, "pending_events", ())]
        try:
            result = super().save(*objs, **kwargs)
        except Conflict:
            self.conflicts += 1
            raise
        if watched is not None and events:
            watched.observe(time.perf_counter(), events)
        return result


@dataclass
class Row:
    """One line of the table."""

    backend: str
    backlog: int
    shape: str
    starts_per_s: float
    steps: int
    seconds: float
    commits: int
    run_latencies_ms: list[float] = field(repr=False, default_factory=list)
    cpu_seconds: float = 0.0
    conflicts: int = 0
    snapshot_bytes: int = 0
    load_ms: float = 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0


def start_backlog(mesh: BenchMesh, runs: int, batch: int, offset: int = 0) -> float:
    """Start ``runs`` runs in transactions of ``batch``; returns starts per second."""
    t0 = time.perf_counter()
    done = 0
    while done < runs:
        size = min(batch, runs - done)
        with mesh.transaction() as tx:
            for i in range(size):
                tx.start(ThreeSteps, {"x": offset + done + i})
        done += size
    return runs / (time.perf_counter() - t0)


def counter(mesh: BenchMesh, name: str) -> int:
    """A queue counter summed over the queue's partitions."""
    return sum(mesh.get_queue(p).counters[name] for p in mesh.queue_partitions_of())


def queue_footprint(url: str) -> tuple[int, float]:
    """Stored snapshot size of the largest queue partition, and a cold process's load time."""
    mesh = BenchMesh.open(url, workflows=[ThreeSteps])
    try:
        footprints = []
        for partition in mesh.queue_partitions_of():
            t0 = time.perf_counter()
            queue = mesh.get_queue(partition)
            load_ms = (time.perf_counter() - t0) * 1000.0
            stored = mesh.mapper.to_stored_event(DispatchQueue.Snapshot.take(queue))
            footprints.append((len(stored.state), load_ms))
        return max(footprints)
    finally:
        mesh.close()


def window_in_process(mesh: BacklogMesh, threads: int, steps: int, timeout: float) -> RunClock:
    """Run one worker of ``threads`` threads until ``steps`` steps are durable."""
    clock = RunClock(expected_steps=steps)
    mesh.bench_recorder = clock
    mesh.clock_recorder = clock
    worker = mesh.worker(concurrency=threads, owner_id=f"bench-{threads}", idle_backoff=IDLE)
    clock.t0 = time.perf_counter()
    cpu0 = time.process_time()
    worker.start()
    finished = clock.all_done.wait(timeout)
    worker.stop()
    clock.cpu_seconds = time.process_time() - cpu0
    mesh.bench_recorder = None
    mesh.clock_recorder = None
    clock.worker_commits = worker.stats.commits
    if not finished:
        raise SystemExit(f"timed out after {len(clock.done)} of {steps} steps")
    return clock


def window_in_processes(url: str, procs: int, threads: int, steps: int, timeout: float) -> Row:
    """Worker processes run until ``steps`` steps are durable; stats come from the children."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", url, "--threads", str(threads)]
    children = []
    try:
        for _ in range(procs):  # one at a time: each opens the journal before the next
            child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None and child.stdin is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit("a worker process failed to start")
            children.append(child)
        probe = BenchMesh.open(url, workflows=[ThreeSteps])
        before = counter(probe, "completed")
        t0 = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("GO\n")
            child.stdin.flush()
        deadline = time.monotonic() + timeout
        while counter(probe, "completed") - before < steps:
            if time.monotonic() > deadline:
                raise SystemExit("processes timed out")
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        done = counter(probe, "completed") - before
        probe.close()
        commits, latencies, cpu, conflicts = 0, [], 0.0, 0
        for child in children:
            out, _ = child.communicate(input="", timeout=120)  # EOF on stdin: stop and report
            report = json.loads(out.strip().splitlines()[-1])
            commits += report["commits"]
            latencies.extend(report["run_latencies_ms"])
            cpu += report["cpu_seconds"]
            conflicts += report["conflicts"]
        shape = f"{procs} procs x {threads}"
        return Row("postgres", 0, shape, 0, done, seconds, commits, latencies, cpu, conflicts)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def child(url: str, threads: int) -> None:
    """A worker process: wait for GO, work until stdin closes, then report."""
    mesh = BacklogMesh.open(url, workflows=[ThreeSteps])
    clock = RunClock()
    mesh.bench_recorder = clock
    mesh.clock_recorder = clock
    print("READY", flush=True)
    sys.stdin.readline()
    worker = mesh.worker(concurrency=threads, owner_id=f"proc-{os.getpid()}", idle_backoff=IDLE)
    cpu0 = time.process_time()
    worker.start()
    sys.stdin.read()  # until the parent closes it
    worker.stop()
    cpu_seconds = time.process_time() - cpu0
    report = {
        "commits": worker.stats.commits,
        "run_latencies_ms": clock.run_latencies_ms(),
        "cpu_seconds": cpu_seconds,
        "conflicts": mesh.conflicts,
    }
    mesh.close()
    print(json.dumps(report), flush=True)


def bench_backlog(backend: str, backlog: int, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with database(backend, args.postgres, f"backlog_{backend}_{backlog}") as url:
        mesh = BacklogMesh.open(
            url,
            workflows=[ThreeSteps],
            queue_partitions=args.partitions,
            queue_partition_limit=args.partition_limit,
        )
        try:
            starts_per_s = start_backlog(mesh, backlog, args.batch)
            snapshot_bytes, load_ms = (0, 0.0) if backend == "memory" else queue_footprint(url)
            if backend == "memory":
                snapshot_bytes = max(
                    len(mesh.mapper.to_stored_event(DispatchQueue.Snapshot.take(q)).state)
                    for q in map(mesh.get_queue, mesh.queue_partitions_of())
                )
            started = backlog
            shapes: list[tuple[str, int, int]] = [("threads", t, 1) for t in args.threads]
            if backend == "postgres":
                shapes += [("procs", args.process_threads, p) for p in args.processes]
            for kind, threads, procs in shapes:
                window = min(args.window, backlog * STEPS_PER_RUN)
                if kind == "threads":
                    conflicts_before = mesh.conflicts
                    clock = window_in_process(mesh, threads, window, args.timeout)
                    row = Row(
                        backend,
                        backlog,
                        f"1 proc x {threads}",
                        starts_per_s,
                        len(clock.done),
                        max(clock.done.values()) - clock.t0,
                        clock.worker_commits,
                        clock.run_latencies_ms(),
                        clock.cpu_seconds,
                        mesh.conflicts - conflicts_before,
                    )
                else:
                    row = window_in_processes(url, procs, threads, window, args.timeout)
                    row.backlog, row.starts_per_s = backlog, starts_per_s
                row.snapshot_bytes, row.load_ms = snapshot_bytes, load_ms
                rows.append(row)
                print(render([row], header=False), flush=True)
                # put back the runs that ended, so the next shape sees the same backlog
                refill = backlog - (started - counter(mesh, "runs_closed"))
                if refill > 0:
                    start_backlog(mesh, refill, args.batch, offset=started)
                    started += refill
        finally:
            mesh.close()
    return rows


def render(rows: list[Row], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(
            f"{'backend':<9}{'backlog':>9}  {'workers':<16}{'starts/s':>9}{'steps/s':>9}"
            f"{'commits/step':>13}{'conflicts/step':>15}{'cpu ms/step':>12}"
            f"{'run p50 ms':>11}{'run p99 ms':>11}"
            f"{'snapshot KB':>12}{'load ms':>9}"
        )
    for r in rows:
        lines.append(
            f"{r.backend:<9}{r.backlog:>9}  {r.shape:<16}{r.starts_per_s:>9.0f}"
            f"{r.steps_per_s:>9.0f}{r.commits / max(r.steps, 1):>13.2f}"
            f"{r.conflicts / max(r.steps, 1):>15.3f}"
            f"{1000 * r.cpu_seconds / max(r.steps, 1):>12.2f}"
            f"{percentile(r.run_latencies_ms, 50):>11.0f}"
            f"{percentile(r.run_latencies_ms, 99):>11.0f}"
            f"{r.snapshot_bytes / 1024:>12.0f}{r.load_ms:>9.0f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--backends", default="memory,sqlite,postgres")
    p.add_argument("--backlogs", type=ints, default=[100, 1000, 10_000, 100_000])
    p.add_argument("--threads", type=ints, default=[1, 4, 16])
    p.add_argument("--processes", type=ints, default=[1, 2, 3, 4])
    p.add_argument("--partitions", type=int, default=1, help="queue partitions of the backlog")
    p.add_argument(
        "--partition-limit",
        type=lambda s: None if s.lower() == "none" else int(s),
        default=DEFAULT_PARTITION_LIMIT,
        help="live attempts past which a partition makes the queue grow ('none': never)",
    )
    p.add_argument("--process-threads", type=int, default=4)
    p.add_argument("--window", type=int, default=3000, help="steps measured per shape")
    p.add_argument("--batch", type=int, default=200, help="starts per transaction")
    p.add_argument("--postgres", default=DEFAULT_POSTGRES)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--_child", dest="child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.threads[0])
        return 0
    backends = [b for b in args.backends.split(",") if b]
    if "postgres" in backends and (why := postgres_available(args.postgres)):
        print(f"postgres skipped: {why}", file=sys.stderr)
        backends.remove("postgres")
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}", flush=True)
    print(render([]), flush=True)
    rows: list[Row] = []
    for backend in backends:
        for backlog in args.backlogs:
            rows.extend(bench_backlog(backend, backlog, args))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([r.__dict__ | {"steps_per_s": r.steps_per_s} for r in rows], out, indent=1)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
