"""The committed-state cache: a load after this process's own commit reads nothing back.

`SquidMesh.save` caches a copy of each run and queue it committed. Loads still fast-forward
from the journal, so another process's writes are seen exactly as before. The worker's
settle and step preparation decide first on the copy in hand (``fresh=False``); a stale
copy costs a conflict or a second look, never a wrong decision.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from deploy_helpers import deploy, steps_of
from deploy_workflows import ApprovedV1, ApprovedV2

from squidmesh_es import SquidMesh
from squidmesh_es.domain import TerminalStatus, queue_id
from squidmesh_es.errors import RunTerminal, StaleClaim
from squidmesh_es.runtime import DefinitionChange, WorkflowRegistry
from squidmesh_es.runtime._execution import (
    Finished,
    Ready,
    claim_attempts,
    prepare_claimed,
    run_claimed,
    settle,
)
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import StepOutcome
from squidmesh_es.workflow._runner import OutcomeStatus

from conftest import OpenMesh
from engine_workflows import Quick


def test_a_load_after_the_commit_reads_no_event_back(
    mesh: SquidMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    stored = {
        "run": len(list(mesh.repository.event_store.get(UUID(run_id)))),
        "queue": len(list(mesh.repository.event_store.get(queue_id(mesh.default_queue)))),
    }
    read: list[int] = []
    real_get = mesh.repository.event_store.get

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        events = list(real_get(*args, **kwargs))
        read.append(len(events))
        return iter(events)

    monkeypatch.setattr(mesh.repository.event_store, "get", counting_get)

    run, queue = mesh.get_run(run_id), mesh.get_queue()

    assert read and sum(read) == 0  # each load looked for newer events and found none
    assert (run.version, queue.version) == (stored["run"], stored["queue"])


def test_the_cached_copy_is_not_the_saved_object(mesh: SquidMesh, clock: ManualClock) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    run = mesh.get_run(run_id)
    run.end(TerminalStatus.CANCELLED, now=clock.now())  # decided, never saved

    again = mesh.get_run(run_id)

    assert not again.is_terminal
    assert again.version == run.version - len(run.pending_events)


def test_an_older_copy_does_not_replace_a_newer_cached_one(mesh: SquidMesh) -> None:
    run_id = mesh.start(Quick, {"order_id": "o1"}).run_id
    old = mesh.get_run(run_id)
    assert mesh.drain() == 3
    newer = mesh.get_run(run_id)

    mesh._cache_committed([old])  # a slow thread reporting an earlier commit

    assert mesh.get_run(run_id).version == newer.version
    assert mesh.get_run(run_id).is_terminal


@pytest.mark.shared_journal
def test_another_process_writes_are_still_seen(open_mesh: OpenMesh) -> None:
    starter = open_mesh(workflows=[Quick])
    worker = open_mesh(workflows=[Quick])
    run_id = starter.start(Quick, {"order_id": "o1"}).run_id
    assert not starter.get_run(run_id).is_terminal  # cached in the starter now

    assert worker.drain() == 3

    assert starter.get_run(run_id).terminal_status == "completed"
    assert starter.get_queue().version == worker.get_queue().version


@pytest.mark.shared_journal
def test_work_another_process_started_after_the_commit_is_drained_here(
    open_mesh: OpenMesh,
) -> None:
    first = open_mesh(workflows=[Quick])
    second = open_mesh(workflows=[Quick])
    run_id = first.start(Quick, {"order_id": "o1"}).run_id
    first.get_queue()
    second.start(Quick, {"order_id": "o2"})  # first's cached queue is now one run behind

    assert first.drain() == 6
    assert first.get_run(run_id).terminal_status == "completed"


LEASE = timedelta(seconds=60)


@pytest.mark.shared_journal
def test_a_settle_on_a_stale_copy_conflicts_and_refuses_on_the_latest_state(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    worker = open_mesh(workflows=[Quick])
    operator = open_mesh(workflows=[Quick])
    run_id = worker.start(Quick, {"order_id": "o1"}).run_id
    [claim] = claim_attempts(
        worker, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )
    finished = run_claimed(worker, claim)  # the worker's copies are current here
    operator.cancel(run_id, actor="ops", reason="stop")  # ... and stale from here on

    settled, _ = settle(worker, "default", [finished], now=clock.now())

    assert isinstance(settled.refused[claim.key], RunTerminal)
    assert worker.get_run(run_id).terminal_status == "cancelled"


@pytest.mark.shared_journal
def test_a_step_claimed_here_but_planned_elsewhere_gets_its_input_from_the_latest_run(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    here = open_mesh(workflows=[Quick])
    elsewhere = open_mesh(workflows=[Quick])
    run_id = here.start(Quick, {"order_id": "o1"}).run_id
    here.get_run(run_id)  # cached here before the first step is settled elsewhere
    assert elsewhere.execute_next(owner_id="elsewhere", lease_for=LEASE) is not None

    [claim] = claim_attempts(
        here, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )
    ready = prepare_claimed(here, claim)

    assert isinstance(ready, Ready)
    assert claim.attempt.step == "charge"
    assert ready.input == elsewhere.get_run(run_id).step_input(
        elsewhere.get_run(run_id).planned[claim.key]
    )


@pytest.mark.shared_journal
def test_an_outcome_a_stale_copy_would_refuse_is_decided_on_the_latest_run(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    here = open_mesh(workflows=[Quick])
    elsewhere = open_mesh(workflows=[Quick])
    run_id = here.start(Quick, {"order_id": "o1"}).run_id
    here.get_run(run_id)  # cached here before the first step is settled elsewhere
    assert elsewhere.execute_next(owner_id="elsewhere", lease_for=LEASE) is not None
    [claim] = claim_attempts(
        here, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )
    assert claim.key not in here.get_run(run_id, fresh=False).planned

    ok = StepOutcome(OutcomeStatus.OK, output={"charged": True})
    settled, _ = settle(here, "default", [Finished(claim, outcome=ok)], now=clock.now())

    assert settled.committed and not settled.refused
    assert claim.key in here.get_run(run_id).applied


def _approved_under_v1(mesh: SquidMesh) -> str:
    """A run of ApprovedV1 taken past its approval: its charge step is planned."""
    run_id = mesh.start(ApprovedV1, {"order_id": "o1"}).run_id
    mesh.drain(owner_id="w")
    mesh.approve(run_id, actor="ops")
    return run_id


def _deploy_strict_v2(mesh: SquidMesh) -> None:
    """Deploy ApprovedV2 into ``mesh``'s process, in strict mode (a changed run fails)."""
    mesh.workflows = WorkflowRegistry([ApprovedV2])
    mesh.on_definition_change = DefinitionChange.FAIL


@pytest.mark.shared_journal
def test_a_run_migrated_elsewhere_is_not_failed_on_the_old_copy_held_here(
    open_mesh: OpenMesh, backend: str, clock: ManualClock
) -> None:
    here = open_mesh(workflows=[ApprovedV1])
    run_id = _approved_under_v1(here)  # charge is planned; here holds the run at ApprovedV1
    elsewhere = deploy(open_mesh, backend, ApprovedV2, strict=True)
    assert elsewhere.migrate_run(run_id, to=ApprovedV2).status == "migrated"
    _deploy_strict_v2(here)  # the same deploy reaches this process
    assert here.get_run(run_id, fresh=False).definition_fingerprint != (
        ApprovedV2.to_spec().fingerprint
    )

    [claim] = claim_attempts(
        here, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )
    assert isinstance(prepare_claimed(here, claim), Ready)

    settled, _ = settle(here, "default", [run_claimed(here, claim)], now=clock.now())
    assert settled.committed and not settled.refused
    here.drain(owner_id="w")
    assert here.get_run(run_id).terminal_status == "completed"
    assert steps_of(here, run_id) == ["reserve", "review", "charge", "notify"]


@pytest.mark.shared_journal
def test_a_mismatch_judged_before_a_migration_elsewhere_does_not_fail_the_run(
    open_mesh: OpenMesh, backend: str, clock: ManualClock
) -> None:
    here = open_mesh(workflows=[ApprovedV1])
    run_id = _approved_under_v1(here)
    _deploy_strict_v2(here)
    [claim] = claim_attempts(
        here, "default", owner_id="w", limit=1, lease_for=LEASE, now=clock.now()
    )
    judged = prepare_claimed(here, claim)  # not migrated yet: this code may not run it
    assert isinstance(judged, Finished) and judged.mismatch is not None
    elsewhere = deploy(open_mesh, backend, ApprovedV2, strict=True)
    assert elsewhere.migrate_run(run_id, to=ApprovedV2).status == "migrated"

    settled, _ = settle(here, "default", [judged], now=clock.now())

    refusal = settled.refused[claim.key]
    assert isinstance(refusal, StaleClaim) and refusal.reason == "run_migrated"
    assert not here.get_run(run_id).is_terminal
