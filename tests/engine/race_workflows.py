"""A workflow whose start pauses at once, and the racer that two processes run at once.

Importable by name, so ``multiprocessing`` spawn children can run `race`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from multiprocessing.synchronize import Barrier
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.read_model import RunSnapshot
from squidmesh_es.workflow import (
    COMPLETE,
    JSONObject,
    Ok,
    Outcome,
    Step,
    StepContext,
    Workflow,
    approval,
    log,
    manual,
    step,
    transition,
)


class Ticket(BaseModel):
    ticket: str


class Ship(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"shipped": True})


class Gate(Workflow):
    """Starts paused at an approval: a start and an approval are one commit each."""

    payload = Ticket
    triggers = [manual("go")]

    review = approval(output="review")
    ship = step(Ship)
    note = log("rejected")

    transitions = [
        transition(review, to=ship),
        transition(review, on=Outcome.ERROR, to=note),
        transition(ship, to=COMPLETE),
        transition(note, to=COMPLETE),
    ]


class Shipping(Workflow):
    """Starts with a step: a start schedules its first attempt on the queue."""

    payload = Ticket
    triggers = [manual("go")]

    ship = step(Ship)

    transitions = [transition(ship, to=COMPLETE)]


KINDS = ("same_start", "same_key", "other_payload", "approve")
"""What each round races: identical starts by id, identical starts by idempotency key,
different payloads for one id, and approvals of one paused run with one key."""


def round_run_id(tag: str, round_: int) -> str:
    return str(uuid5(NAMESPACE_URL, f"race:{tag}:{round_}"))


def race(url: str, tag: str, index: int, rounds: int, barrier: Barrier, out: str) -> None:
    """Race the other process round by round; write one JSON line per command's outcome."""
    mesh = SquidMesh.open(url, workflows=[Gate, Shipping])
    lines = []
    try:
        for n in range(rounds):
            kind = KINDS[n % len(KINDS)]
            rid = round_run_id(tag, n)
            barrier.wait()
            if kind == "approve":
                start = partial(mesh.start, Gate, {"ticket": "t"}, run_id=rid)
                lines.append(_outcome(n, "same_start", start))
                barrier.wait()
                command = partial(mesh.approve, rid, idempotency_key=f"approve:{n}")
            elif kind == "same_key":
                command = partial(
                    mesh.start, Shipping, {"ticket": "t"}, idempotency_key=f"{tag}:{n}"
                )
            else:
                command = partial(_start, mesh, rid, "t" if kind == "same_start" else f"p{index}")
            lines.append(_outcome(n, kind, command))
    finally:
        mesh.close()
        Path(out).write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")


def _start(mesh: SquidMesh, run_id: str, ticket: str) -> RunSnapshot:
    return mesh.start(Shipping, {"ticket": ticket}, run_id=run_id)


def _outcome(n: int, kind: str, command: Callable[[], RunSnapshot]) -> dict[str, object]:
    try:
        snap = command()
    except SquidMeshError as exc:
        return {"round": n, "kind": kind, "error": exc.code, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - an untyped error is what the test hunts
        return {"round": n, "kind": kind, "error": type(exc).__name__, "message": str(exc)}
    return {"round": n, "kind": kind, "run_id": str(snap.run_id), "status": snap.status}
