"""The main demo: one run walks through the journal on the embedded SQLite default.

Run it with ``python3 dev.py demo`` (or ``python examples/main_demo.py``). It opens the
journal named by ``SQUIDMESH_DATABASE_URL`` (default ``sqlite:///squidmesh.db`` in the
working directory), records a run's life as events of the ``WorkflowRun`` and
``DispatchQueue`` aggregates, shows a stale worker being fenced out, and reopens the
journal to print what it holds.

Until the execution engine lands, the demo drives the aggregates directly, which is also
how a host embeds them in its own ``eventsourcing`` code.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import datetime, timedelta
from uuid import uuid4

from squidmesh_es import SquidMesh
from squidmesh_es.domain import (
    DispatchQueue,
    Runnable,
    TerminalStatus,
    WorkflowRun,
    hash_claim_token,
)
from squidmesh_es.domain import runnable_key as make_key
from squidmesh_es.errors import StaleClaim

STEPS = ("check_gateway", "retry_charge", "notify_customer")
LEASE = timedelta(seconds=30)


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    url = os.environ.get("SQUIDMESH_DATABASE_URL", "sqlite:///squidmesh.db")
    say(f"journal: {url}")
    mesh = SquidMesh.from_env()
    run_id = uuid4()
    now = mesh.now()

    run = WorkflowRun.start(
        run_id=run_id,
        workflow="PaymentRecovery",
        trigger="manual",
        input={"invoice_id": "inv-42", "amount_cents": 1999},
        queue="default",
        now=now,
        definition_version="demo",
    )
    run.receive_command("start_run", payload={"workflow": "PaymentRecovery"}, now=now)
    queue = mesh.get_queue()
    plan_and_schedule(run, queue, STEPS[0], now)
    mesh.save(run, queue)
    say(f"[1/{len(STEPS)}] started run {run_id}, planned {STEPS[0]}")

    for index, step in enumerate(STEPS, start=1):
        queue = mesh.get_queue()
        (attempt,) = [a for a in queue.claimable(mesh.now()) if a.run_id == str(run_id)]
        token = secrets.token_urlsafe(32)
        claim_id = secrets.token_urlsafe(16)
        queue.claim(
            attempt.runnable_key,
            claim_id=claim_id,
            claim_token_hash=hash_claim_token(token),
            owner_id="demo-worker",
            lease_for=LEASE,
            now=mesh.now(),
        )
        mesh.save(queue)
        say(f"[{index}/{len(STEPS)}] claimed {step}, lease {LEASE.seconds}s")

        if index == 1:
            show_stale_worker_is_fenced(mesh, attempt.runnable_key)

        output = {step: {"ok": True}}
        now = mesh.now()
        queue, run = mesh.get_queue(), mesh.get_run(run_id)
        queue.complete(
            attempt.runnable_key,
            claim_id=claim_id,
            claim_token_hash=hash_claim_token(token),
            result=output,
            now=now,
        )
        queue.mark_applied(attempt.runnable_key, now=now)
        run.apply_result(attempt.runnable_key, outcome="ok", result=output, now=now)
        if index < len(STEPS):
            plan_and_schedule(run, queue, STEPS[index], now)
        else:
            run.end(TerminalStatus.COMPLETED, now=now)
            queue.close_run(run_id, status=TerminalStatus.COMPLETED.value, now=now)
        mesh.save(run, queue)  # result, application and successor: one transaction
        say(f"[{index}/{len(STEPS)}] completed {step} and applied it in one commit")

    mesh.close()
    with SquidMesh.from_env() as reader:
        final = reader.get_run(run_id)
        say("")
        say(f"run {final.run_id}: status={final.status} version={final.version}")
        say(f"  context: {final.context}")
        say(f"  commands: {[c['signal_type'] for c in final.command_history]}")
        say(f"  anomalies: {final.anomalies}")
        say(f"  queue counters: {reader.get_queue().counters}")
    return 0 if final.status == "completed" else 1


def plan_and_schedule(run: WorkflowRun, queue: DispatchQueue, step: str, now: datetime) -> None:
    key = make_key(run.id, step, 1)
    run.plan([Runnable(key, step, 1, run.input, now, run.queue)], now=now)
    queue.schedule(
        run_id=run.id,
        runnable_key=key,
        step=step,
        attempt_number=1,
        input=run.input,
        visible_at=now,
        now=now,
    )


def show_stale_worker_is_fenced(mesh: SquidMesh, key: str) -> None:
    queue = mesh.get_queue()
    try:
        queue.complete(
            key,
            claim_id="someone-else",
            claim_token_hash=hash_claim_token("guess"),
            result={"forged": True},
            now=mesh.now(),
        )
    except StaleClaim as refused:
        say(f"      a stale worker's completion was refused: {refused.code}")


if __name__ == "__main__":
    sys.exit(main())
