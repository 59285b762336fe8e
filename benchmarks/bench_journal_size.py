"""Journal bytes a run costs: one run of four steps with a large payload, to completion.

Prints, per backend, the bytes of every stored event (the journal) and of every snapshot the
run left, and the journal bytes divided by the payload's size. A value that is stored once
costs about one payload; each copy into another event costs one more.

    python benchmarks/bench_journal_size.py                     # 1 MiB, memory and SQLite
    python benchmarks/bench_journal_size.py --backends memory,sqlite,postgres --kib 512
"""

from __future__ import annotations

import argparse
import os
import tempfile
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


@dataclass
class Measured:
    """Bytes one run left in a journal."""

    backend: str
    events: int
    event_bytes: int
    snapshot_bytes: int


def measure(mesh: SquidMesh, backend: str, payload_bytes: int) -> Measured:
    """Run one workflow with a payload of ``payload_bytes`` and sum what was stored."""
    run = mesh.start(FourSteps, {"blob": "x" * payload_bytes})
    mesh.drain(owner_id="bench")
    assert mesh.inspect_run(run.run_id).status == "completed"
    mesh.queue_snapshots.wait()
    stored = mesh.recorder.select_notifications(start=None, limit=1_000_000)  # type: ignore[attr-defined]
    snapshots = 0
    for originator in {n.originator_id for n in stored}:
        snapshots += sum(len(s.state) for s in mesh.snapshots.recorder.select_events(originator))  # type: ignore[union-attr]
    return Measured(backend, len(stored), sum(len(n.state) for n in stored), snapshots)


@contextmanager
def opened(backend: str, postgres_url: str) -> Iterator[SquidMesh]:
    """A fresh journal on ``backend``; Postgres gets its own schema, dropped afterwards."""
    limits = Limits(max_value_bytes=8 << 20, max_request_bytes=8 << 20)
    if backend == "memory":
        with SquidMesh.open("memory://", workflows=[FourSteps], limits=limits) as mesh:
            yield mesh
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/journal.db"
            with SquidMesh.open(url, workflows=[FourSteps], limits=limits) as mesh:
                yield mesh
    else:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if urlsplit(postgres_url).query else "?"
        try:
            url = f"{postgres_url}{sep}schema={schema}"
            with SquidMesh.open(url, workflows=[FourSteps], limits=limits) as mesh:
                yield mesh
        finally:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    """Parse the options, measure each backend, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=1024, help="payload size in KiB")
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    payload = args.kib * 1024
    print(f"one run of 4 steps, payload {args.kib} KiB")
    print(f"{'backend':<10}{'events':>8}{'journal bytes':>16}{'x payload':>11}{'snapshots':>12}")
    for backend in args.backends.split(","):
        with opened(backend, args.postgres_url) as mesh:
            m = measure(mesh, backend, payload)
        ratio = m.event_bytes / payload
        print(
            f"{backend:<10}{m.events:>8}{m.event_bytes:>16,}{ratio:>11.2f}{m.snapshot_bytes:>12,}"
        )


if __name__ == "__main__":
    main()
