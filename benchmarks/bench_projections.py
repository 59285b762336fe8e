"""Projection benchmarks: list_runs latency over 100,000 runs, and catch-up throughput.

    .venv/bin/python benchmarks/bench_projections.py [--backend sqlite,postgres] [--rows 100000]
        [--runs 400] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Listing: catalog rows are inserted directly through the view (no journal events behind
them), then the first page and a deep page (after ~90% of the rows, via its cursor) are
timed, with and without a workflow filter. Catch-up: runs of a two-step workflow are started
and executed through the engine, then every projection is rebuilt from the first event and
the events applied per second are reported per projection.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventsourcing.persistence import Tracking

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "projections"))

from projection_workflows import Billing  # noqa: E402

from squidmesh_es import SquidMesh  # noqa: E402
from squidmesh_es.projections import Projections, run_cursor  # noqa: E402
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


def bench_catch_up(url: str, runs: int) -> None:
    clock = ManualClock(T0)
    with SquidMesh.open(url, clock=clock) as mesh:
        for i in range(runs):
            mesh.start(Billing, {"invoice_id": f"inv-{i}", "fail": i % 5 == 0})
            clock.advance(timedelta(milliseconds=5))
        mesh.drain(now=clock.now())
        head = mesh.recorder.max_notification_id() or 0
        with Projections(mesh) as projections:
            for name in projections.names():
                start = time.perf_counter()
                applied = projections.rebuild(name)[name]
                elapsed = time.perf_counter() - start
                print(
                    f"  catch-up {name:<15} {applied:>6,} events of {head:,} in {elapsed:.2f} s:"
                    f" {applied / elapsed:,.0f} events/s"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgres")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    for backend in args.backend.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            suffix = uuid.uuid4().hex[:10]

            def url(kind: str, backend: str = backend, tmp: str = tmp, suffix: str = suffix) -> str:
                if backend == "sqlite":
                    return f"sqlite:///{tmp}/{kind}.db"
                return f"{args.postgres_url}?schema=bench_{kind}_{suffix}"

            print(f"{backend}:")
            bench_listing(url("listing"), args.rows)
            bench_catch_up(url("catchup"), args.runs)
            if backend == "postgres":
                drop_schemas(args.postgres_url, suffix)


def drop_schemas(base_url: str, suffix: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        for kind in ("listing", "catchup"):
            conn.execute(f"DROP SCHEMA IF EXISTS bench_{kind}_{suffix} CASCADE")


if __name__ == "__main__":
    main()
