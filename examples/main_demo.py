"""The main demo: payment recovery runs end to end on the embedded SQLite default.

Run it with ``python3 dev.py demo`` (or ``python examples/main_demo.py``). It opens the
journal named by ``SQUIDMESH_DATABASE_URL`` (default ``sqlite:///squidmesh.db`` in the
working directory) and starts two payment recoveries: one whose gateway answers, and one
whose gateway stays down, so its check is retried with backoff until the workflow routes
to a credit. A worker loop executes visible attempts and prints each step as it lands.

Waits and retries are durable: nothing sleeps in the worker, attempts simply become visible
later. The demo fast-forwards its clock to the next visible attempt instead of waiting for
real; pass ``--real-time`` to watch it take the full ~20 seconds.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payment_recovery import PaymentRecovery  # noqa: E402

from squidmesh_es import SquidMesh  # noqa: E402
from squidmesh_es.read_model import explain_run_snapshot  # noqa: E402
from squidmesh_es.runtime import DEFAULT_DATABASE_URL  # noqa: E402
from squidmesh_es.testing import ManualClock  # noqa: E402


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    real_time = "--real-time" in argv
    clock = None if real_time else ManualClock(datetime.now(UTC))
    with SquidMesh.from_env(clock=clock, workflows=[PaymentRecovery]) as mesh:
        began = mesh.now()
        where = os.environ.get("SQUIDMESH_DATABASE_URL", DEFAULT_DATABASE_URL)
        say(f"journal: {where}" + ("" if real_time else " (demo clock fast-forwards waits)"))
        runs = {
            "settles": mesh.start(
                PaymentRecovery,
                {
                    "account_id": "acct_1",
                    "invoice_id": "inv_100",
                    "attempt_id": "try_1",
                    "gateway_url": "https://gateway.example/ok",
                },
            ),
            "gateway down": mesh.start(
                PaymentRecovery,
                {
                    "account_id": "acct_2",
                    "invoice_id": "inv_200",
                    "attempt_id": "try_1",
                    "gateway_url": "https://gateway.example/unavailable",
                },
            ),
        }
        names = {snap.run_id: label for label, snap in runs.items()}
        for label, snap in runs.items():
            say(f"started {label!r}: run {snap.run_id} ({snap.status}, {snap.reason})")
        seen: dict[str, int] = {}
        while not all(mesh.get_run(s.run_id).is_terminal for s in runs.values()):
            snap = mesh.execute_next(owner_id="demo-worker", lease_for=timedelta(seconds=30))
            if snap is None:
                visible_at = mesh.get_queue().next_visible_at()
                if visible_at is None:
                    break
                wait = max(visible_at - mesh.now(), timedelta(0))
                say(f"  ... nothing visible for {wait.total_seconds():.1f}s (durable wait)")
                if clock is not None:
                    clock.set(visible_at)
                else:
                    time.sleep(wait.total_seconds())
                continue
            history = mesh.inspect_run(snap.run_id, include_history=True).applied_runnables
            for applied in history[seen.get(snap.run_id, 0) :]:
                offset = (applied.applied_at - began).total_seconds()
                route = (applied.transition or {}).get("to") or (
                    "retry" if (applied.transition or {}).get("retry_runnable_key") else "-"
                )
                say(
                    f"  [+{offset:5.1f}s] {names[snap.run_id]:<12} {applied.step:<22} "
                    f"{applied.outcome:<5} -> {route}"
                )
            seen[snap.run_id] = len(history)
        say("")
        for label, started in runs.items():
            final = mesh.inspect_run(started.run_id, include_history=True)
            explanation = explain_run_snapshot(final, now=mesh.now())
            say(f"{label}: status={final.status} reason={final.reason}")
            say(f"  summary: {explanation.summary}")
            say(f"  context: {final.context}")
            say(f"  commands: {[c.signal_type for c in final.command_history]}")
            say(
                f"  steps applied: {len(final.applied_runnables)}, "
                f"anomalies: {len(final.anomalies)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
