"""Races answer as documented: a twin command committing meanwhile never leaks its traces.

A command reads its run, then the run's queue. The interleaving tests put a twin's commit
exactly between those two reads (the window where the queue showed the twin's work and the
command raised `ConflictingIntent`); the process test races two processes for real.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from race_workflows import KINDS, Gate, Shipping, race, round_run_id

from squidmesh_es import SquidMesh
from squidmesh_es.errors import ManualStepMismatch, RunIdTaken
from squidmesh_es.testing import ManualClock

from conftest import T0

RID = "8f0e0f5e-1b7c-4d0e-9a57-0d5a3b2f6c11"


class Interleaved(SquidMesh):
    """Runs ``twin`` once, just before the next queue read: a concurrent commit, on cue."""

    twin: Callable[[], object] | None = None

    def get_queue(
        self, name: str | None = None, *, now: datetime | None = None, fresh: bool = True
    ) -> Any:
        twin, self.twin = self.twin, None
        if twin is not None:
            twin()
        return super().get_queue(name, now=now, fresh=fresh)

    def queue_partitions_of(self, name: str | None = None) -> list[str]:
        # Reading the partition count is not the decision's read: the twin waits for that.
        twin, self.twin = self.twin, None
        try:
            return super().queue_partitions_of(name)
        finally:
            self.twin = twin


@pytest.fixture
def mesh(database_url: str, clock: ManualClock) -> Iterator[Interleaved]:
    opened = Interleaved.open(database_url, clock=clock, workflows=[Gate, Shipping])
    yield opened
    opened.close()


def test_a_start_racing_its_twin_returns_the_twins_run(mesh: Interleaved) -> None:
    mesh.twin = lambda: mesh.start(Shipping, {"ticket": "t"}, run_id=RID, now=T0 + timedelta(1))

    snap = mesh.start(Shipping, {"ticket": "t"}, run_id=RID, now=T0)

    assert str(snap.run_id) == RID
    assert snap.started_at == T0 + timedelta(1)
    assert [c.signal_type for c in mesh.inspect_run(RID, include_history=True).command_history] == [
        "start_run"
    ]


def test_a_start_by_key_racing_its_twin_returns_the_twins_run(mesh: Interleaved) -> None:
    twin_at = T0 + timedelta(seconds=1)
    mesh.twin = lambda: mesh.start(Shipping, {"ticket": "t"}, idempotency_key="k", now=twin_at)

    snap = mesh.start(Shipping, {"ticket": "t"}, idempotency_key="k", now=T0)

    assert snap.started_at == twin_at


def test_a_start_racing_another_payload_for_its_id_is_refused_as_taken(
    mesh: Interleaved,
) -> None:
    mesh.twin = lambda: mesh.start(Shipping, {"ticket": "first"}, run_id=RID, now=T0 + timedelta(1))

    with pytest.raises(RunIdTaken):
        mesh.start(Shipping, {"ticket": "second"}, run_id=RID, now=T0)

    assert mesh.inspect_run(RID).input == {"ticket": "first"}


def test_an_approval_racing_its_twin_with_the_same_key_returns_the_same_run(
    mesh: Interleaved,
) -> None:
    mesh.start(Gate, {"ticket": "t"}, run_id=RID, now=T0)
    twin_at = T0 + timedelta(seconds=2)
    mesh.twin = lambda: mesh.approve(RID, idempotency_key="once", now=twin_at)

    snap = mesh.approve(RID, idempotency_key="once", now=T0 + timedelta(seconds=1))

    history = mesh.inspect_run(RID, include_history=True).command_history
    assert [c.signal_type for c in history] == ["start_run", "approve_run"]
    assert snap.status == "running"
    assert snap.context["review"]["decided_at"] == twin_at.isoformat()


def test_an_approval_racing_another_key_meets_the_run_no_longer_paused(
    mesh: Interleaved,
) -> None:
    mesh.start(Gate, {"ticket": "t"}, run_id=RID, now=T0)
    mesh.twin = lambda: mesh.approve(RID, idempotency_key="a", now=T0 + timedelta(seconds=2))

    with pytest.raises(ManualStepMismatch):
        mesh.approve(RID, idempotency_key="b", now=T0 + timedelta(seconds=1))


def test_a_start_in_a_transaction_racing_its_twin_raises_conflict_and_writes_nothing(
    mesh: Interleaved,
) -> None:
    from squidmesh_es.errors import Conflict

    mesh.twin = lambda: mesh.start(Shipping, {"ticket": "t"}, run_id=RID, now=T0 + timedelta(1))

    with pytest.raises(Conflict), mesh.transaction() as tx:
        tx.start(Shipping, {"ticket": "t"}, run_id=RID, now=T0)

    assert mesh.inspect_run(RID).started_at == T0 + timedelta(1)


ROUNDS = 800
"""Rounds per process and backend (a quarter of each kind); each round is one barrier apart."""


@pytest.mark.shared_journal
def test_two_processes_racing_every_command_see_only_documented_outcomes(
    database_url: str, tmp_path: Path
) -> None:
    SquidMesh.open(database_url).close()  # tables exist before the racers open
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2, timeout=30)
    outs = [tmp_path / f"racer{i}.jsonl" for i in range(2)]
    racers = [
        spawn.Process(target=race, args=(database_url, "r", i, ROUNDS, barrier, str(outs[i])))
        for i in range(2)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
        assert racer.exitcode == 0

    outcomes: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for out in outs:
        for line in out.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            outcomes[(row["round"], row["kind"])].append(row)
    undocumented = Counter[str]()
    for (_, kind), rows in outcomes.items():
        errors = sorted(str(r.get("error")) for r in rows if "error" in r)
        if kind == "other_payload":
            if errors != ["run_id_taken"]:
                undocumented.update(f"{kind}:{e}" for e in errors or ["no_refusal"])
        elif errors:
            undocumented.update(f"{kind}:{e}" for e in errors)
        elif len({r["run_id"] for r in rows}) != 1:
            undocumented[f"{kind}:two_runs"] += 1
    assert undocumented == Counter()
    assert len(outcomes) == ROUNDS + ROUNDS // len(KINDS)

    with SquidMesh.open(database_url, workflows=[Gate, Shipping]) as mesh:
        for n in range(3, ROUNDS, len(KINDS)):
            history = mesh.inspect_run(round_run_id("r", n), include_history=True)
            assert [c.signal_type for c in history.command_history] == [
                "start_run",
                "approve_run",
            ]
