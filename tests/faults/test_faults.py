"""The fault suite: 300 runs, 3 worker processes killed every few seconds, Postgres restarted.

Bounded so that it runs in CI in about a minute. ``benchmarks/soak.py`` runs the same at
a larger scale. The Postgres cluster is private to the test (``initdb`` into a temporary
folder, on a free port); the shared cluster is never touched.
"""

from __future__ import annotations

from pathlib import Path

from chaos import ChaosConfig, private_postgres, run_chaos


def test_every_run_finishes_once_through_kills_and_a_postgres_restart(tmp_path: Path) -> None:
    # Starts are spread over 15 s so that runs are under way through at least three kills
    # (one every 2 to 4 s) however fast the workers drain what has started.
    config = ChaosConfig(
        runs=300, workers=3, kill_every=(2.0, 4.0), postgres_restarts=1, start_seconds=15.0
    )

    with private_postgres() as cluster:
        report = run_chaos(config, cluster, tmp_path)

    summary = "\n".join(report.lines())
    assert report.lost == [], summary
    assert report.failed == [], summary
    assert report.completed == config.runs, summary
    assert report.duplicate_applications == [], summary
    assert report.undocumented_errors == [], summary
    assert report.kills >= 3 and report.postgres_restarts == 1, summary
