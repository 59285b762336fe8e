"""Dashboard runs page over 100,000 runs: first page, deep page, filtered, time range.

    .venv/bin/python benchmarks/bench_dashboard.py [--backend sqlite,postgres] [--rows 100000]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Catalog rows are inserted directly through the projections' view, as in
bench_projections.py (no journal events behind them), then the runs page is fetched over
HTTP (Starlette's test client, in process) and the median of 20 requests reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from eventsourcing.persistence import Tracking
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_projections import T0, catalog_row, cursor_at  # noqa: E402

from squidmesh_es import SquidMesh  # noqa: E402
from squidmesh_es.projections import Projections  # noqa: E402
from squidmesh_es.projections._contract import CATALOG  # noqa: E402
from squidmesh_es.projections._view import Changes  # noqa: E402
from squidmesh_es.web import create_app  # noqa: E402


def timed(client: TestClient, path: str, repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text[:500]
        assert response.text.count('class="run-row"') == 50
    return statistics.median(samples)


def bench(url: str, rows: int) -> None:
    with SquidMesh.open(url) as mesh:
        with Projections(mesh) as projections:
            for offset in range(0, rows, 5000):
                changes = Changes()
                for i in range(offset, min(offset + 5000, rows)):
                    changes.add(CATALOG, catalog_row(i))
                projections.view.write(
                    "bench_catalog", changes, Tracking("bench_catalog", offset + 1), events=0
                )
        app = create_app(mesh)
        until = (T0 + timedelta(seconds=rows // 10)).strftime("%Y-%m-%dT%H:%M:%S")
        since = (T0 + timedelta(seconds=rows // 20)).strftime("%Y-%m-%dT%H:%M:%S")
        with TestClient(app) as client:
            for label, path in (
                ("first page", "/"),
                (
                    f"deep page (after row {rows - rows // 10:,})",
                    f"/?after={cursor_at(rows // 10)}",
                ),
                ("workflow=Audit, first page", "/?workflow=Audit"),
                ("status=paused, deep page", f"/?status=paused&after={cursor_at(rows // 10)}"),
                ("started in a range 90% deep", f"/?since={since}&until={until}"),
            ):
                print(f"  runs page, {label}: {timed(client, path):.1f} ms (median of 20)")
        app.state.dashboard.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backend.split(","):
            print(f"{backend}: {args.rows:,} runs")
            if backend == "sqlite":
                bench(f"sqlite:///{tmp}/dashboard.db", args.rows)
            else:
                schema = f"bench_dashboard_{suffix}"
                try:
                    bench(f"{args.postgres_url}?schema={schema}", args.rows)
                finally:
                    drop_schema(args.postgres_url, schema)


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
