"""Journal bytes a run costs: one run of four steps with a large payload, to completion.

Prints, per backend and for a plain and an ``erasable`` workflow, the bytes of every stored
event (the journal) and of every snapshot the run left, the journal bytes divided by the
payload's size, and the CPU time of the run (start to completion, this process). A value
stored once costs about one payload; each copy into another event costs one more.

    python benchmarks/bench_journal_size.py                     # 1 MiB, memory and SQLite
    python benchmarks/bench_journal_size.py --backends memory,sqlite,postgres --kib 512
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel

from squidmesh_es import Ok, SquidMesh, Step, StepContext, Workflow
from squidmesh_es.workflow import COMPLETE, JSONObject, Limits, manual, step, transition

DEFAULT_POSTGRES = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class Blob(BaseModel):
    """The payload: one large string."""

    blob: str


class Touch(Step):
    """A step that reads its whole input and returns a small output."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({f"{ctx.step}_saw": len(str(input.get("blob", "")))})


class FourSteps(Workflow):
    """``a -> b -> c -> d``, each step seeing the whole run state (no input bindings)."""

    payload = Blob
    triggers = [manual("go")]

    a = step(Touch)
    b = step(Touch)
    c = step(Touch)
    d = step(Touch)

    transitions = [
        transition(a, to=b),
        transition(b, to=c),
        transition(c, to=d),
        transition(d, to=COMPLETE),
    ]


class ErasableFourSteps(FourSteps):
    """The same workflow, its runs' personal data sealed under a key of their own."""

    erasable = True


@dataclass
class Measured:
    """Bytes one run left in a journal, and the CPU it took."""

    workflow: str
    events: int
    event_bytes: int
    snapshot_bytes: int
    cpu_ms: float


def measure(mesh: SquidMesh, workflow: type[Workflow], payload_bytes: int) -> Measured:
    """Run ``workflow`` with a payload of ``payload_bytes`` and sum what was stored."""
    payload = {"blob": "x" * payload_bytes}
    started = time.process_time()
    run = mesh.start(workflow, payload)
    mesh.drain(owner_id="bench")
    cpu_ms = (time.process_time() - started) * 1000
    assert mesh.inspect_run(run.run_id).status == "completed"
    mesh.queue_snapshots.wait()
    stored = mesh.recorder.select_notifications(start=None, limit=1_000_000)  # type: ignore[attr-defined]
    snapshots = 0
    for originator in {n.originator_id for n in stored}:
        snapshots += sum(len(s.state) for s in mesh.snapshots.recorder.select_events(originator))  # type: ignore[union-attr]
    events = sum(len(n.state) for n in stored)
    return Measured(workflow.__name__, len(stored), events, snapshots, cpu_ms)


@contextmanager
def opened(backend: str, postgres_url: str) -> Iterator[SquidMesh]:
    """A fresh journal on ``backend``; Postgres gets its own schema, dropped afterwards."""
    limits = Limits(max_value_bytes=8 << 20, max_request_bytes=8 << 20)
    workflows = [FourSteps, ErasableFourSteps]
    if backend == "memory":
        with SquidMesh.open("memory://", workflows=workflows, limits=limits) as mesh:
            yield mesh
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/journal.db"
            with SquidMesh.open(url, workflows=workflows, limits=limits) as mesh:
                yield mesh
    else:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if urlsplit(postgres_url).query else "?"
        try:
            url = f"{postgres_url}{sep}schema={schema}"
            with SquidMesh.open(url, workflows=workflows, limits=limits) as mesh:
                yield mesh
        finally:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    """Parse the options, measure each backend and workflow, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=1024, help="payload size in KiB")
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    payload = args.kib * 1024
    print(f"one run of 4 steps, payload {args.kib} KiB")
    print(
        f"{'backend':<10}{'workflow':<19}{'events':>7}{'journal bytes':>15}{'x payload':>10}"
        f"{'snapshots':>11}{'CPU ms':>8}"
    )
    for backend in args.backends.split(","):
        for workflow in (FourSteps, ErasableFourSteps):
            with opened(backend, args.postgres_url) as mesh:
                m = measure(mesh, workflow, payload)
            ratio = m.event_bytes / payload
            print(
                f"{backend:<10}{m.workflow:<19}{m.events:>7}{m.event_bytes:>15,}{ratio:>10.2f}"
                f"{m.snapshot_bytes:>11,}{m.cpu_ms:>8.1f}"
            )


if __name__ == "__main__":
    main()
