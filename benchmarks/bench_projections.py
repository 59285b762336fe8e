"""Projection benchmarks: list_runs latency over 100,000 runs, and catch-up throughput.

    .venv/bin/python benchmarks/bench_projections.py [--backend sqlite,postgres] [--rows 100000]
        [--runs 600] [--repeat 3] [--one-by-one 500]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Listing (``--rows 0`` skips it): catalog rows are inserted directly through the view (no
journal events behind them), then the first page and a deep page (after ~90% of the rows,
via its cursor) are timed, with and without a workflow filter.

Catch-up: runs of a two-step workflow are started and executed through the engine (17
events a run), then each projection is rebuilt from the first event ``--repeat`` times;
events applied per second (best, median, worst) and the follower's CPU time per event (its
read-ahead thread included, the database server's not) are printed. Beside each, the first
``--one-by-one`` of the same events are applied one per transaction, as the library's
``ProjectionRunner`` does: on Postgres by that runner (``RunProjectionRunner``), on SQLite
(which cannot subscribe) by the same per-event loop. The machine's load average and the
psycopg implementation are printed first: timings on a shared machine move with its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import Notification, Tracking

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "projections"))

from projection_workflows import Billing  # noqa: E402

from squidmesh_es import SquidMesh  # noqa: E402
from squidmesh_es.projections import Projections, RunProjectionRunner, run_cursor  # noqa: E402
from squidmesh_es.projections._contract import CATALOG  # noqa: E402
from squidmesh_es.projections._view import Changes  # noqa: E402
from squidmesh_es.read_model import RunSummary, SnapshotStatus  # noqa: E402
from squidmesh_es.testing import ManualClock  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORKFLOWS = ("Billing", "Audit", "Digest", "Checkout")
STATUSES = ("completed", "running", "failed", "paused")


def catalog_row(i: int) -> dict[str, object]:
    at = T0 + timedelta(seconds=i)
    return {
        "run_id": str(uuid.UUID(int=i + 1)),
        "workflow": WORKFLOWS[i % 4],
        "trigger": "manual",
        "queue": "default",
        "status": STATUSES[(i // 4) % 4],
        "terminal": STATUSES[(i // 4) % 4] in ("completed", "failed"),
        "terminal_status": None,
        "definition_version": "v1",
        "definition_fingerprint": "f" * 64,
        "parent_run_id": None,
        "replayed_from_run_id": None,
        "started_at": at,
        "updated_at": at,
        "ended_at": None,
        "deadline": None,
        "anomalies": [],
        "anomaly_count": 0,
        "run_version": 5,
        "queue_version": i,
    }


def cursor_at(i: int) -> str:
    row = catalog_row(i)
    return run_cursor(
        RunSummary(
            run_id=str(row["run_id"]),
            workflow=str(row["workflow"]),
            queue="default",
            status=SnapshotStatus.RUNNING,
            terminal=False,
            terminal_status=None,
            definition_version="v1",
            indexed_at=T0 + timedelta(seconds=i),
            started_at=T0 + timedelta(seconds=i),
            updated_at=T0 + timedelta(seconds=i),
        )
    )


def timed(fn: object, repeat: int = 30) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_listing(url: str, rows: int) -> None:
    with SquidMesh.open(url) as mesh, Projections(mesh) as projections:
        start = time.perf_counter()
        for offset in range(0, rows, 5000):
            changes = Changes()
            for i in range(offset, min(offset + 5000, rows)):
                changes.add(CATALOG, catalog_row(i))
            projections.view.write(
                "bench_catalog", changes, Tracking("bench_catalog", offset + 1), events=0
            )
        print(f"  inserted {rows:,} catalog rows directly in {time.perf_counter() - start:.1f} s")
        deep = cursor_at(rows // 10)  # newest first: ~90% of the rows lie before it
        for label, filters in (("all runs", {}), ("workflow=Audit", {"workflow": "Audit"})):
            first = timed(lambda f=filters: projections.list_runs(limit=50, **f))
            deep_ms = timed(lambda f=filters: projections.list_runs(limit=50, after=deep, **f))
            assert len(projections.list_runs(limit=50, after=deep, **filters)) == 50
            print(
                f"  list_runs(limit=50, {label}): first page {first:.2f} ms, "
                f"deep page (after row {rows - rows // 10:,}) {deep_ms:.2f} ms  (median of 30)"
            )


def bench_catch_up(url: str, backend: str, runs: int, repeat: int, limit: int) -> None:
    clock = ManualClock(T0)
    with SquidMesh.open(url, clock=clock) as mesh:
        started = time.perf_counter()
        for i in range(runs):
            mesh.start(Billing, {"invoice_id": f"inv-{i}", "fail": i % 5 == 0})
            clock.advance(timedelta(milliseconds=5))
        mesh.drain(now=clock.now())
        head = mesh.recorder.max_notification_id() or 0
        took = time.perf_counter() - started
        print(f"  journal: {runs:,} runs, {head:,} events (recorded in {took:.0f} s)")
        with Projections(mesh) as projections:
            for name in projections.names():
                rates, cpus, applied = [], [], 0
                for _ in range(repeat):
                    wall, cpu = time.perf_counter(), time.process_time()
                    applied = projections.rebuild(name)[name]
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    rates.append(applied / wall)
                    cpus.append(cpu / applied * 1e6)
                print(
                    f"  catch-up {name:<15}{applied:>6,} events: best {max(rates):>6,.0f} events/s,"
                    f" median {statistics.median(rates):>6,.0f}, worst {min(rates):>6,.0f}"
                    f" ({repeat} runs); CPU {min(cpus):.0f}-{max(cpus):.0f} us/event"
                )
                if limit:
                    one_by_one(mesh, projections, name, backend, limit)


def one_by_one(
    mesh: SquidMesh, projections: Projections, name: str, backend: str, limit: int
) -> None:
    """The first ``limit`` of the same events, one per transaction, as the library's
    ``ProjectionRunner`` applies them (on Postgres, that runner itself).

    The projection writes beside the live tables under a name of its own, from position 0.
    """
    live = projections.projections[name]
    cls = type(live)
    side = type(
        cls.__name__,
        (cls,),
        {"name": f"{name}.one_by_one", "tables": tuple(t.beside() for t in cls.tables)},
    )
    projections.view.prepare_beside(side.name, side.tables)
    followed = [n for page in pages(mesh, live.topics) for n in page][:limit]
    last = followed[-1].id
    wall, cpu = time.perf_counter(), time.process_time()
    if backend == "postgres":
        label = "library ProjectionRunner"
        with RunProjectionRunner(side, env=mesh.env) as runner:
            while (runner.view.position(side.name) or 0) < last:
                runner.run_forever(timeout=0.02)  # re-raises the projection's error
    else:
        label = "one event per transaction (ProjectionRunner's loop; SQLite cannot subscribe)"
        projection = side(projections.view, mesh)
        for notification in followed:
            event = mesh.mapper.to_domain_event(notification)
            projection.process_event(event, Tracking(mesh.name, notification.id))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"    {label}, first {len(followed):,} events: {len(followed) / wall:,.0f} events/s"
        + ("" if backend == "postgres" else f"; CPU {cpu / len(followed) * 1e6:.0f} us/event")
    )


def pages(mesh: SquidMesh, topics: Sequence[str]) -> Iterator[list[Notification]]:
    position = 0
    while True:
        page = mesh.recorder.select_notifications(
            start=position, limit=5000, topics=topics, inclusive_of_start=False
        )
        if not page:
            return
        yield page
        position = page[-1].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one-by-one", type=int, default=500, dest="one_by_one")  # 0: skip
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(machine())
    for backend in args.backend.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            suffix = uuid.uuid4().hex[:10]

            def url(kind: str, backend: str = backend, tmp: str = tmp, suffix: str = suffix) -> str:
                if backend == "sqlite":
                    return f"sqlite:///{tmp}/{kind}.db"
                return f"{args.postgres_url}?schema=bench_{kind}_{suffix}"

            print(f"{backend}:")
            if args.rows:
                bench_listing(url("listing"), args.rows)
            bench_catch_up(url("catchup"), backend, args.runs, args.repeat, args.one_by_one)
            if backend == "postgres":
                drop_schemas(args.postgres_url, suffix)


def machine() -> str:
    import psycopg

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load average {load}; Python {platform.python_version()},"
        f" psycopg {psycopg.__version__} ({psycopg.pq.__impl__})"
    )


def drop_schemas(base_url: str, suffix: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        for kind in ("listing", "catchup"):
            conn.execute(f"DROP SCHEMA IF EXISTS bench_{kind}_{suffix} CASCADE")


if __name__ == "__main__":
    main()
