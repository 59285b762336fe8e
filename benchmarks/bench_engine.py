"""Side-by-side engine benchmark: N three-step workflows on memory, SQLite and Postgres.

Runs the same workload (a workflow of three trivial steps, ``a -> b -> c``) on squidmesh-es
and, when ``dbos`` is importable (``pip install -e '.[bench]'``), on DBOS Transact 3.4, and
prints one table:

- ``steps/s``: ``3 * runs`` divided by the wall time from the first start (or enqueue) to
  the moment the last step's outcome is durable. Starting the runs is inside the timing.
- ``p50``/``p99``: step latency, from the moment the step became durably runnable (the
  commit that scheduled it returned: the run's start for the first step, the previous
  step's completion commit otherwise) to the moment its own outcome is durable (the commit
  that recorded its completion returned). For DBOS: from the enqueue returning (queued) or
  the workflow body starting (direct), or the previous step's checkpoint, to the step's
  checkpoint returning.
- ``commits/step``: every committed write transaction (starts included) divided by the
  number of steps. DBOS does not expose it (``-``).
- ``x DBOS``: our steps/s divided by the best DBOS mode's steps/s on the same database.

Every Postgres run uses a fresh schema, dropped afterwards; SQLite runs use a temporary
file. DBOS runs in a child process (it is a process-wide singleton), as do the worker
processes of ``--processes``.

    python benchmarks/bench_engine.py --runs 500 --workers 4 \
        --backends memory,sqlite,postgres --processes 2 --peer dbos
    python benchmarks/bench_engine.py --runs 20          # quick check, a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from squidmesh_es import Ok, SquidMesh, Step, StepContext, Workflow
from squidmesh_es.domain import DispatchQueue
from squidmesh_es.errors import Conflict
from squidmesh_es.runtime import DEFAULT_BATCH_WINDOW
from squidmesh_es.workflow import COMPLETE, JSONObject, manual, step, transition

DEFAULT_POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# -- the workload -------------------------------------------------------------------------


class AddOne(Step):
    """First step: ``x + 1``."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"x": int(str(input.get("x", 0))) + 1})


class Double(Step):
    """Second step: ``x * 2``."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"x": int(str(input.get("x", 0))) * 2})


class SubtractOne(Step):
    """Third step: ``x - 1``."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"x": int(str(input.get("x", 0))) - 1})


class BenchInput(BaseModel):
    """The run's payload."""

    x: int


class ThreeSteps(Workflow):
    """The benchmark workflow: three trivial steps in sequence."""

    payload = BenchInput
    triggers = [manual("go")]
    a = step(AddOne)
    b = step(Double)
    c = step(SubtractOne)
    transitions = [transition(a, to=b), transition(b, to=c), transition(c, to=COMPLETE)]


STEPS_PER_RUN = 3

# -- measuring ----------------------------------------------------------------------------


class Recorder:
    """Commit times of scheduled and completed attempts, written by `BenchMesh.save`."""

    def __init__(self, expected_steps: int = 0) -> None:
        self.lock = threading.Lock()
        self.visible: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.commits = 0
        self.conflicts = 0
        self.expected_steps = expected_steps
        self.all_done = threading.Event()

    def note(self, at: float, scheduled: list[str], completed: list[str]) -> None:
        with self.lock:
            self.commits += 1
            for key in scheduled:
                self.visible.setdefault(key, at)
            for key in completed:
                self.done.setdefault(key, at)
            if self.expected_steps and len(self.done) >= self.expected_steps:
                self.all_done.set()

    def conflict(self) -> None:
        with self.lock:
            self.conflicts += 1


class BenchMesh(SquidMesh):
    """`SquidMesh` that reports each commit to a `Recorder`.

    It also serializes ``repository.get`` (unless ``GUARD_CACHE`` is off): eventsourcing
    9.5.6 fast-forwards a cached aggregate under a lock but deep-copies it after releasing
    that lock, so two threads loading the same queue (a host calling ``start`` while a
    worker settles) can fail with "dictionary keys changed during iteration". See
    docs/performance.md; the engine needs the same guard.
    """

    name = "SquidMesh"  # the engine's tables, whatever the subclass is called
    GUARD_CACHE = True
    bench_recorder: Recorder | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.GUARD_CACHE:
            unguarded = self.repository.get
            lock = threading.Lock()

            def guarded_get(*a: Any, **kw: Any) -> Any:
                with lock:
                    return unguarded(*a, **kw)

            self.repository.get = guarded_get  # type: ignore[method-assign]

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recorder = self.bench_recorder
        if recorder is None:
            return super().save(*objs, **kwargs)
        scheduled: list[str] = []
        completed: list[str] = []
        events = 0
        for obj in objs:
            for event in getattr(obj, "pending_events", ()):
                events += 1
                if isinstance(event, DispatchQueue.AttemptScheduled):
                    scheduled.append(event.runnable_key)
                elif isinstance(event, DispatchQueue.AttemptCompleted):
                    completed.append(event.runnable_key)
        try:
            result = super().save(*objs, **kwargs)
        except Conflict:
            recorder.conflict()
            raise
        if events:
            recorder.note(time.perf_counter(), scheduled, completed)
        return result


@dataclass
class Result:
    """One row of the table."""

    system: str
    backend: str
    mode: str
    runs: int
    steps: int
    seconds: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    commits: int | None = None
    conflicts: int | None = None
    note: str = ""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def commits_per_step(self) -> float | None:
        return None if self.commits is None or not self.steps else self.commits / self.steps


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latencies(visible: dict[str, float], done: dict[str, float]) -> list[float]:
    """Milliseconds from durably runnable to durably done, for every completed attempt."""
    return [(done[k] - visible[k]) * 1000.0 for k in done if k in visible]


# -- databases ----------------------------------------------------------------------------


def _pg_connect(base_url: str) -> Any:
    import psycopg

    return psycopg.connect(base_url, autocommit=True, connect_timeout=5)


def drop_schema(base_url: str, name: str) -> None:
    """Drop a Postgres schema and everything in it."""
    from psycopg import sql

    with _pg_connect(base_url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def fresh_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A new Postgres schema name, dropped (with everything in it) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        drop_schema(base_url, name)


def postgres_available(base_url: str) -> str | None:
    """``None`` when Postgres answers, else why not."""
    try:
        with _pg_connect(base_url) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "skip Postgres"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def with_schema(base_url: str, schema: str) -> str:
    sep = "&" if urlsplit(base_url).query else "?"
    return f"{base_url}{sep}schema={schema}"


@contextmanager
def database(backend: str, base_pg: str, prefix: str) -> Iterator[str]:
    """A fresh database URL for one run of ``backend``."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
            yield f"sqlite:///{tmp}/{prefix}.db"
    elif backend == "postgres":
        with fresh_schema(base_pg, prefix) as schema:
            yield with_schema(base_pg, schema)
    else:
        raise SystemExit(f"unknown backend {backend!r}")


# -- squidmesh-es -------------------------------------------------------------------------


def start_runs(mesh: SquidMesh, runs: int, batch: int) -> None:
    """Start ``runs`` runs, one commit each, or ``batch`` to a commit (`start_many`)."""
    if batch <= 1:
        for i in range(runs):
            mesh.start(ThreeSteps, {"x": i})
        return
    for first in range(0, runs, batch):
        mesh.start_many(ThreeSteps, [{"x": i} for i in range(first, min(first + batch, runs))])


def _batched(args: argparse.Namespace) -> str:
    return f", starts by {args.start_batch}" if args.start_batch > 1 else ""


def _idle(args: argparse.Namespace) -> tuple[timedelta, timedelta]:
    low, high = (float(x) for x in args.idle_ms.split(","))
    return timedelta(milliseconds=low), timedelta(milliseconds=high)


def _split(args: argparse.Namespace) -> str:
    return f", {args.partitions} partitions" if args.partitions > 1 else ""


def _window(args: argparse.Namespace) -> timedelta:
    """The worker's ``batch_window``: ``--batch-window-ms``, else the runtime's default."""
    if args.batch_window_ms is None:
        return DEFAULT_BATCH_WINDOW
    return timedelta(milliseconds=args.batch_window_ms)


def _windowed(args: argparse.Namespace) -> str:
    return "" if args.batch_window_ms is None else f", window {args.batch_window_ms:g} ms"


def bench_threads(url: str, backend: str, args: argparse.Namespace) -> Result:
    """One process: the main thread starts the runs while one worker runs them."""
    runs = args.runs
    mesh = BenchMesh.open(url, workflows=[ThreeSteps], queue_partitions=args.partitions)
    try:
        # warm up (imports, tables, caches) on a throwaway run, outside the timing
        mesh.start(ThreeSteps, {"x": 0})
        mesh.drain(owner_id="warmup")
        recorder = Recorder(expected_steps=runs * STEPS_PER_RUN)
        mesh.bench_recorder = recorder
        worker = mesh.worker(
            concurrency=args.workers,
            owner_id="bench",
            idle_backoff=_idle(args),
            batch_window=_window(args),
        ).start()
        t0 = time.perf_counter()
        start_runs(mesh, runs, args.start_batch)
        finished = recorder.all_done.wait(args.timeout)
        worker.stop()
        mesh.bench_recorder = None
        if not finished:
            raise SystemExit(f"{backend}: timed out with {len(recorder.done)} steps done")
        seconds = max(recorder.done.values()) - t0
        return Result(
            system="squidmesh-es",
            backend=backend,
            mode=f"1 proc x {args.workers} threads"
            + _batched(args)
            + _split(args)
            + _windowed(args),
            runs=runs,
            steps=len(recorder.done),
            seconds=seconds,
            latencies_ms=latencies(recorder.visible, recorder.done),
            commits=recorder.commits,
            conflicts=recorder.conflicts,
            note=f"worker commits {worker.stats.commits}",
        )
    finally:
        mesh.close()


def bench_processes(url: str, backend: str, args: argparse.Namespace) -> Result:
    """``--processes`` worker processes of ``--workers`` threads; this process starts runs."""
    runs, procs = args.runs, args.processes
    mesh = BenchMesh.open(url, workflows=[ThreeSteps], queue_partitions=args.partitions)
    children: list[subprocess.Popen[str]] = []
    try:
        mesh.get_queue()  # tables exist before the children open them
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--_worker-child",
            url,
            "--runs",
            str(runs),
            "--workers",
            str(args.workers),
            "--idle-ms",
            args.idle_ms,
            "--timeout",
            str(args.timeout),
            *(["--no-cache-guard"] if args.no_cache_guard else []),
            *(
                ["--batch-window-ms", str(args.batch_window_ms)]
                if args.batch_window_ms is not None
                else []
            ),
        ]
        # one at a time: concurrent CREATE TABLE IF NOT EXISTS on Postgres can fail with
        # "tuple concurrently updated" (see docs/performance.md)
        for _ in range(procs):
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            children.append(child)
            assert child.stdout is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit("a worker process failed to start")
        recorder = Recorder()
        mesh.bench_recorder = recorder
        t0 = time.perf_counter()
        start_runs(mesh, runs, args.start_batch)
        mesh.bench_recorder = None
        visible = dict(recorder.visible)
        done: dict[str, float] = {}
        commits, conflicts, worker_commits = recorder.commits, recorder.conflicts, 0
        for child in children:
            out, _ = child.communicate(timeout=args.timeout + 30)
            report = json.loads(out.strip().splitlines()[-1])
            for key, at in report["visible"].items():
                visible.setdefault(key, at)
            for key, at in report["done"].items():
                done.setdefault(key, at)
            commits += report["commits"]
            conflicts += report["conflicts"]
            worker_commits += report["worker_commits"]
        if len(done) < runs * STEPS_PER_RUN:
            raise SystemExit(f"{backend}: only {len(done)} steps done")
        # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes
        return Result(
            system="squidmesh-es",
            backend=backend,
            mode=f"{procs} procs x {args.workers} threads"
            + _batched(args)
            + _split(args)
            + _windowed(args),
            runs=runs,
            steps=len(done),
            seconds=max(done.values()) - t0,
            latencies_ms=latencies(visible, done),
            commits=commits,
            conflicts=conflicts,
            note=f"worker commits {worker_commits}",
        )
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        mesh.close()


def worker_child(url: str, args: argparse.Namespace) -> None:
    """A worker process: run until the queue has closed ``--runs`` runs, then report."""
    mesh = BenchMesh.open(url, workflows=[ThreeSteps])
    recorder = Recorder()
    mesh.bench_recorder = recorder
    worker = mesh.worker(
        concurrency=args.workers,
        owner_id=f"bench-{os.getpid()}",
        idle_backoff=_idle(args),
        batch_window=_window(args),
    ).start()
    print("READY", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        partitions = mesh.queue_partitions_of()
        if sum(mesh.get_queue(p).counters["runs_closed"] for p in partitions) >= args.runs:
            break
    worker.stop()
    mesh.close()
    report = {
        "visible": recorder.visible,
        "done": recorder.done,
        "commits": recorder.commits,
        "conflicts": recorder.conflicts,
        "worker_commits": worker.stats.commits,
    }
    print(json.dumps(report), flush=True)


# -- DBOS ---------------------------------------------------------------------------------


def dbos_child(url: str, schema: str | None, args: argparse.Namespace) -> None:
    """Run the workload on DBOS, directly (W threads) then queued; print JSON results."""
    import logging

    from dbos import DBOS, DBOSConfig, SetWorkflowID

    runs, workers = args.runs, args.workers
    marks: dict[str, list[float]] = {}
    ready: dict[str, float] = {}

    @DBOS.step()
    def s1(x: int) -> int:
        return x + 1

    @DBOS.step()
    def s2(x: int) -> int:
        return x * 2

    @DBOS.step()
    def s3(x: int) -> int:
        return x - 1

    @DBOS.workflow()
    def wf(x: int) -> int:
        times = [time.perf_counter()]
        x = s1(x)
        times.append(time.perf_counter())
        x = s2(x)
        times.append(time.perf_counter())
        x = s3(x)
        times.append(time.perf_counter())
        marks[str(DBOS.workflow_id)] = times
        return x

    config: DBOSConfig = {
        "name": "squidmesh_bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    if schema:
        config["dbos_system_schema"] = schema
    DBOS(config=config)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS.launch()
    DBOS.register_queue("bench", worker_concurrency=workers, polling_interval_sec=0.05)
    wf(0)  # warm up
    marks.clear()

    def collect(started: float, refs: dict[str, float] | None) -> dict[str, Any]:
        lat: list[float] = []
        end = started
        for wid, times in marks.items():
            first = refs.get(wid, times[0]) if refs is not None else times[0]
            points = [min(first, times[1]), *times[1:]]
            lat.extend((points[i + 1] - points[i]) * 1000.0 for i in range(STEPS_PER_RUN))
            end = max(end, times[-1])
        return {"seconds": end - started, "steps": len(marks) * STEPS_PER_RUN, "lat": lat}

    out: dict[str, Any] = {}
    # direct: W threads each calling the workflow function in a loop
    counter = iter(range(runs))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            wf(i)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["direct"] = collect(t0, None)
    marks.clear()
    # queued: enqueue every run, then wait for every result
    queue = DBOS.retrieve_queue("bench")
    handles = []
    t0 = time.perf_counter()
    for i in range(runs):
        wid = f"q-{i}-{uuid.uuid4().hex[:8]}"
        with SetWorkflowID(wid):
            handles.append(queue.enqueue(wf, i))
        ready[wid] = time.perf_counter()
    for handle in handles:
        handle.get_result()
    out["queued"] = collect(t0, ready)
    DBOS.destroy()
    print(json.dumps(out), flush=True)


def bench_dbos(backend: str, args: argparse.Namespace) -> list[Result]:
    schema: str | None = None
    with tempfile.TemporaryDirectory(prefix="bench-dbos-") as tmp:
        if backend == "postgres":
            url = args.postgres
            schema = f"dbos_bench_{uuid.uuid4().hex[:10]}"
        else:
            url = f"sqlite:///{tmp}/dbos.sqlite"
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--_dbos-child",
            url,
            "--_dbos-schema",
            schema or "",
            "--runs",
            str(args.runs),
            "--workers",
            str(args.workers),
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout + 60, check=False
            )
        finally:
            if schema:
                drop_schema(args.postgres, schema)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        print(f"  DBOS on {backend} failed: {' | '.join(tail)}", file=sys.stderr)
        return []
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    results = []
    for mode, label in (("direct", f"direct, {args.workers} threads"), ("queued", "queue")):
        row = data[mode]
        if mode == "queued":
            label = f"queue, concurrency {args.workers}"
        results.append(
            Result(
                system="DBOS 3.4",
                backend=backend,
                mode=label,
                runs=args.runs,
                steps=row["steps"],
                seconds=row["seconds"],
                latencies_ms=row["lat"],
            )
        )
    return results


def dbos_importable() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


# -- the table ----------------------------------------------------------------------------


def render(results: list[Result]) -> str:
    best: dict[str, float] = {}
    for r in results:
        if r.system != "squidmesh-es":
            best[r.backend] = max(best.get(r.backend, 0.0), r.steps_per_s)
    header = (
        f"{'system':<13} {'backend':<9} {'mode':<26} {'runs':>5} {'steps/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'commits/step':>12} {'x DBOS':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        cps = r.commits_per_step
        ratio = "-"
        if r.system == "squidmesh-es" and best.get(r.backend):
            ratio = f"{r.steps_per_s / best[r.backend]:.2f}"
        lines.append(
            f"{r.system:<13} {r.backend:<9} {r.mode:<26} {r.runs:>5} {r.steps_per_s:>8.1f} "
            f"{r.pct(50):>7.1f} {r.pct(99):>7.1f} "
            f"{'-' if cps is None else f'{cps:.2f}':>12} {ratio:>7}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=200, help="workflows per measurement")
    p.add_argument(
        "--start-batch",
        type=int,
        default=1,
        help="our runs started this many to a commit (start_many); 1: one mesh.start each",
    )
    p.add_argument("--workers", type=int, default=4, help="step threads per worker process")
    p.add_argument(
        "--backends", default="memory,sqlite,postgres", help="comma list: memory,sqlite,postgres"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also run Postgres with this many worker processes (0: threads only)",
    )
    p.add_argument(
        "--peer",
        default="auto",
        choices=["auto", "dbos", "none"],
        help="peer system to run side by side (auto: dbos when importable)",
    )
    p.add_argument(
        "--partitions", type=int, default=1, help="queue partitions the runs are spread over"
    )
    p.add_argument("--postgres", default=DEFAULT_POSTGRES, help="Postgres base URL")
    p.add_argument("--idle-ms", default="2,20", help="worker idle backoff min,max in ms (polling)")
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=None,
        help="worker batch_window in ms (default: the runtime's, 2 ms; 0 commits at once)",
    )
    p.add_argument(
        "--no-cache-guard",
        action="store_true",
        help="do not serialize repository.get (reproduces the library's cache race)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--_worker-child", dest="worker_child", help=argparse.SUPPRESS)
    p.add_argument("--_dbos-child", dest="dbos_child", help=argparse.SUPPRESS)
    p.add_argument("--_dbos-schema", dest="dbos_schema", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    BenchMesh.GUARD_CACHE = not args.no_cache_guard
    if args.runs < 1 or args.workers < 1 or args.processes < 0:
        p.error("--runs and --workers must be positive, --processes not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker_child:
        worker_child(args.worker_child, args)
        return 0
    if args.dbos_child:
        dbos_child(args.dbos_child, args.dbos_schema or None, args)
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    peer = args.peer
    if peer == "auto":
        peer = "dbos" if dbos_importable() else "none"
    elif peer == "dbos" and not dbos_importable():
        print("dbos is not importable: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    pg_problem = postgres_available(args.postgres) if "postgres" in backends else None
    if pg_problem:
        print(f"skipping postgres: {pg_problem}", file=sys.stderr)
        backends = [b for b in backends if b != "postgres"]
    print(
        f"{args.runs} runs x {STEPS_PER_RUN} steps, {args.workers} worker threads, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus",
        flush=True,
    )
    results: list[Result] = []

    def progress(rows: list[Result]) -> None:
        results.extend(rows)
        for r in rows:
            print(
                f"  {r.system} {r.backend} {r.mode}: {r.steps_per_s:.1f} steps/s",
                file=sys.stderr,
                flush=True,
            )

    for backend in backends:
        with database(backend, args.postgres, "bench") as url:
            progress([bench_threads(url, backend, args)])
        if backend == "postgres" and args.processes:
            with database(backend, args.postgres, "bench") as url:
                progress([bench_processes(url, backend, args)])
        if peer == "dbos" and backend != "memory":
            progress(bench_dbos(backend, args))
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            rows = []
            for r in results:
                row = asdict(r)
                row.pop("latencies_ms")
                row.update(
                    steps_per_s=r.steps_per_s,
                    p50_ms=r.pct(50),
                    p99_ms=r.pct(99),
                    commits_per_step=r.commits_per_step,
                )
                rows.append(row)
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
