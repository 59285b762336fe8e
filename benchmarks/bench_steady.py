"""Steady backlog: the cost of a step while N runs stay queued, starts included.

`bench_backlog.py` measures a window of steps on a backlog that is refilled between
windows; at small backlogs its window is the whole backlog, drained to empty. This one
keeps the backlog at about N throughout: a starter thread replaces the runs that end
(`start_many`, as a host would), while a worker of ``--threads`` threads runs steps for
``--seconds``. It prints, per backend and backlog:

- ``steps/s``: steps the worker committed per second of the measurement;
- ``starts/s``: runs the starter started per second to keep the backlog up;
- ``cpu ms/step``: CPU time of the whole process (worker, starter, snapshot writer) per
  step, so it counts the starts too;
- ``partitions``: how many partitions the queue had grown to.

``--gc-freeze`` moves every object alive once the backlog is built into the collector's
permanent generation (`gc.freeze`), to show what the cyclic collector's walks over a large
in-memory journal cost.

    python benchmarks/bench_steady.py --backends memory,sqlite,postgres --backlogs 100,10000,100000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from collections.abc import Sequence

from bench_engine import DEFAULT_POSTGRES, STEPS_PER_RUN, ThreeSteps, database

from squidmesh_es import SquidMesh
from squidmesh_es.runtime import Worker

START_BATCH = 200


class Starter(threading.Thread):
    """Keeps about ``backlog`` runs queued: starts as many runs as the worker finished.

    Each run is three steps, so the worker's executed steps tell how many ended without
    reading the queues (which would cost more as they grow).
    """

    def __init__(self, mesh: SquidMesh, worker: Worker, backlog: int) -> None:
        super().__init__(name="bench-starter", daemon=True)
        self.mesh, self.worker, self.backlog = mesh, worker, backlog
        self.started = backlog
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            ended = self.worker.stats.executed // STEPS_PER_RUN
            missing = self.backlog - (self.started - ended)
            if missing >= min(START_BATCH, max(1, self.backlog // 2)):
                payloads = [{"x": self.started + i} for i in range(min(missing, START_BATCH))]
                self.mesh.start_many(ThreeSteps, payloads)
                self.started += len(payloads)
            else:
                time.sleep(0.02)


def measure(url: str, backlog: int, args: argparse.Namespace) -> str:
    mesh = SquidMesh.open(url, workflows=[ThreeSteps])
    try:
        started = 0
        while started < backlog:
            size = min(START_BATCH, backlog - started)
            mesh.start_many(ThreeSteps, [{"x": started + i} for i in range(size)])
            started += size
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        worker = mesh.worker(concurrency=args.threads, owner_id="steady").start()
        starter = Starter(mesh, worker, backlog)
        starter.start()
        time.sleep(args.warmup)
        steps0, starts0, cpu0 = worker.stats.executed, starter.started, time.process_time()
        time.sleep(args.seconds)
        steps = worker.stats.executed - steps0
        starts = starter.started - starts0
        cpu = time.process_time() - cpu0
        starter.stopping.set()
        starter.join()
        worker.stop()
        partitions = len(mesh.queue_partitions_of())
    finally:
        mesh.close()
        if args.gc_freeze:
            gc.unfreeze()
    return (
        f"{backlog:>9} {steps / args.seconds:>9.0f} {starts / args.seconds:>9.0f}"
        f" {1000 * cpu / max(steps, 1):>12.3f} {partitions:>11}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--backends", default="memory,sqlite,postgres")
    p.add_argument("--backlogs", type=ints, default=[100, 10_000, 100_000])
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seconds", type=float, default=6.0, help="length of each measurement")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds run before measuring")
    p.add_argument("--postgres", default=DEFAULT_POSTGRES, help="Postgres base URL")
    p.add_argument("--gc-freeze", action="store_true", help="gc.freeze() once the backlog is built")
    args = p.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(
        f"{'backend':<8} {'backlog':>9} {'steps/s':>9} {'starts/s':>9}"
        f" {'cpu ms/step':>12} {'partitions':>11}"
    )
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        for backlog in args.backlogs:
            with database(backend, args.postgres, f"steady_{backend}_{backlog}") as url:
                print(f"{backend:<8} {measure(url, backlog, args)}", flush=True)


if __name__ == "__main__":
    main()
