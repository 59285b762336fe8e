"""Soak test: the fault suite of ``tests/faults`` at a larger scale, with a printed report.

Starts ``--runs`` four-step runs through the public API while ``--workers`` ``squidmesh
worker`` processes are SIGKILLed every few seconds and a private Postgres cluster (``initdb``
into a temporary folder, on a free port, as the ``postgres`` user) is stopped and started
again; then prints lost runs, failed runs, duplicate applications, duplicate side effects
per step and the drain time. Exits 1 when a run was lost or failed, a step was applied
twice, or an undocumented error was seen.

    python benchmarks/soak.py --runs 10000 --restarts 5 --deadline 3600
    python benchmarks/soak.py --runs 300                    # about a minute
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))

from chaos import ChaosConfig, private_postgres, run_chaos  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 4.0))
    parser.add_argument("--restarts", type=int, default=3, help="Postgres restarts")
    parser.add_argument("--restart-spacing", type=float, default=30.0, help="seconds apart")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds down per restart")
    parser.add_argument("--start-seconds", type=float, default=None, help="spread starts")
    parser.add_argument("--step-seconds", type=float, default=0.01)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--heartbeat-seconds", type=float, default=1.0)
    parser.add_argument("--deadline", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    config = ChaosConfig(
        runs=args.runs,
        workers=args.workers,
        concurrency=args.concurrency,
        kill_every=tuple(args.kill_every),
        postgres_restarts=args.restarts,
        restart_spacing_seconds=args.restart_spacing,
        outage_seconds=args.outage,
        start_seconds=args.start_seconds if args.start_seconds is not None else args.runs / 50,
        step_seconds=args.step_seconds,
        lease_seconds=args.lease_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        deadline_seconds=args.deadline,
        seed=args.seed,
    )
    with private_postgres() as cluster, tempfile.TemporaryDirectory() as workdir:
        report = run_chaos(config, cluster, Path(workdir))
    print("\n".join(report.lines()))
    for error in report.undocumented_errors[:20]:
        print(f"  {error}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
