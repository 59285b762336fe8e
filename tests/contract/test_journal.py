"""The journal contract, run on memory, SQLite and Postgres through the ``open_mesh`` fixture."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from freezegun import freeze_time

from squidmesh_es import SquidMesh
from squidmesh_es.domain import (
    DispatchQueue,
    Runnable,
    TerminalStatus,
    WorkflowRun,
    hash_claim_token,
    queue_id,
    runnable_key,
)
from squidmesh_es.errors import (
    Conflict,
    CorruptedEvent,
    InvalidArgument,
    InvalidRunId,
    RunNotFound,
    StaleClaim,
)
from squidmesh_es.runtime._app import queue_snapshot_interval
from squidmesh_es.testing import delete_snapshots, freezegun_transcodings

from conftest import T0, OpenMesh

LEASE = timedelta(seconds=30)


def start_run(mesh: SquidMesh, *, steps: tuple[str, ...] = ("charge",)) -> tuple[UUID, list[str]]:
    """Start a run with planned and scheduled runnables, committed together."""
    run_id = uuid4()
    now = mesh.now()
    run = WorkflowRun.start(
        run_id=run_id,
        workflow="PaymentRecovery",
        trigger="manual",
        input={"invoice_id": "inv-1"},
        queue="default",
        now=now,
    )
    run.receive_command("start_run", payload={"workflow": "PaymentRecovery"}, now=now)
    runnables = [
        Runnable(runnable_key(run_id, s, 1), s, 1, {"invoice_id": "inv-1"}, now, "default")
        for s in steps
    ]
    run.plan(runnables, now=now)
    queue = mesh.get_queue()
    for r in runnables:
        queue.schedule(
            run_id=run_id,
            runnable_key=r.runnable_key,
            step=r.step,
            attempt_number=1,
            visible_at=r.visible_at,
            now=now,
        )
    mesh.save(run, queue)
    return run_id, [r.runnable_key for r in runnables]


def state(aggregate: Any) -> dict[str, Any]:
    if isinstance(aggregate, DispatchQueue):  # indexes are derived: compare what is stored
        return {"version": aggregate.version, "state": aggregate.stored_state()}
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_run_and_queue_round_trip_through_storage(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, keys = start_run(mesh)

    reader = open_mesh()
    run = reader.get_run(str(run_id))
    queue = reader.get_queue("default")

    assert run.workflow == "PaymentRecovery" and run.version == 3
    assert list(run.planned) == keys
    assert [a.runnable_key for a in queue.claimable(T0)] == keys
    assert run.command_history[0]["signal_type"] == "start_run"
    assert run.started_at == T0 and isinstance(run.started_at, datetime)


def test_stale_save_raises_conflict_and_leaves_the_stream_unchanged(open_mesh: OpenMesh) -> None:
    first, second = open_mesh(), open_mesh()
    run_id, _ = start_run(first)
    mine, theirs = first.get_run(run_id), second.get_run(run_id)
    mine.end(TerminalStatus.COMPLETED, now=T0)
    first.save(mine)

    theirs.end(TerminalStatus.CANCELLED, now=T0)
    with pytest.raises(Conflict):
        second.save(theirs)

    stored = open_mesh().get_run(run_id)
    assert stored.terminal_status == "completed" and stored.version == 4


def test_one_save_is_atomic_across_run_and_queue(open_mesh: OpenMesh) -> None:
    first, second = open_mesh(), open_mesh()
    run_id, keys = start_run(first)
    stale_queue = second.get_queue()
    winner = first.get_queue()
    winner.claim(
        keys[0],
        claim_id="c1",
        claim_token_hash=hash_claim_token("t1"),
        owner_id="w1",
        lease_for=LEASE,
        now=T0,
    )
    first.save(winner)

    run = second.get_run(run_id)
    run.end(TerminalStatus.CANCELLED, now=T0)
    stale_queue.close_run(run_id, status="cancelled", now=T0)
    with pytest.raises(Conflict):
        second.save(run, stale_queue)

    assert open_mesh().get_run(run_id).terminal_status is None


def test_concurrent_claims_of_one_attempt_let_exactly_one_win(open_mesh: OpenMesh) -> None:
    first, second = open_mesh(), open_mesh()
    _, keys = start_run(first)
    q1, q2 = first.get_queue(), second.get_queue()
    q1.claim(
        keys[0],
        claim_id="c1",
        claim_token_hash=hash_claim_token("t1"),
        owner_id="w1",
        lease_for=LEASE,
        now=T0,
    )
    q2.claim(
        keys[0],
        claim_id="c2",
        claim_token_hash=hash_claim_token("t2"),
        owner_id="w2",
        lease_for=LEASE,
        now=T0,
    )

    first.save(q1)
    with pytest.raises(Conflict):
        second.save(q2)

    fresh = open_mesh().get_queue()
    assert fresh.attempt(keys[0]).owner_id == "w1"  # type: ignore[union-attr]
    with pytest.raises(StaleClaim):
        fresh.complete(
            keys[0], claim_id="c2", claim_token_hash=hash_claim_token("t2"), result={}, now=T0
        )


def test_several_claims_and_completions_commit_in_one_save(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, keys = start_run(mesh, steps=("a", "b", "c"))
    queue, run = mesh.get_queue(), mesh.get_run(run_id)
    for n, attempt in enumerate(queue.claimable(T0)):
        queue.claim(
            attempt.runnable_key,
            claim_id=f"c{n}",
            claim_token_hash=hash_claim_token(f"t{n}"),
            owner_id="w",
            lease_for=LEASE,
            now=T0,
        )
    for n, key in enumerate(keys):
        queue.complete(
            key,
            claim_id=f"c{n}",
            claim_token_hash=hash_claim_token(f"t{n}"),
            result={key[-3:]: n},
            now=T0,
        )
        queue.mark_applied(key, now=T0)
        run.apply_result(key, outcome="ok", result={key.split(":")[1]: n}, now=T0)

    recordings = mesh.save(run, queue)

    assert len(recordings) == 3 * 3 + 3
    reloaded = open_mesh()
    assert len(reloaded.get_queue()) == 0
    assert reloaded.get_run(run_id).context == {"a": 0, "b": 1, "c": 2}


def test_no_raw_claim_token_reaches_storage(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    _, keys = start_run(mesh)
    token = "raw-claim-token-7f3a"
    queue = mesh.get_queue()
    queue.claim(
        keys[0],
        claim_id="c1",
        claim_token_hash=hash_claim_token(token),
        owner_id="w",
        lease_for=LEASE,
        now=T0,
    )
    queue.heartbeat(
        keys[0], claim_id="c1", claim_token_hash=hash_claim_token(token), lease_for=LEASE, now=T0
    )
    mesh.save(queue)

    stored = mesh.recorder.select_notifications(start=None, limit=1000)
    assert stored and all(token.encode() not in n.state for n in stored)
    assert any(hash_claim_token(token).encode() in n.state for n in stored)


def test_deleting_every_snapshot_gives_identical_state(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, _ = start_run(mesh)
    queue = mesh.get_queue()
    for n in range(100):  # past both snapshot intervals
        key = runnable_key(uuid4(), "s", 1)
        queue.schedule(
            run_id=key.split(":")[0],
            runnable_key=key,
            step="s",
            attempt_number=1,
            visible_at=T0,
            now=T0,
        )
        token = hash_claim_token(f"t{n}")
        queue.claim(
            key, claim_id=f"c{n}", claim_token_hash=token, owner_id="w", lease_for=LEASE, now=T0
        )
        queue.heartbeat(key, claim_id=f"c{n}", claim_token_hash=token, lease_for=LEASE, now=T0)
    run = mesh.get_run(run_id)
    for n in range(110):
        run.receive_command("note", payload={"n": n}, now=T0)
    mesh.save(run, queue)
    assert mesh.queue_snapshots.wait(10)
    run_version, queue_version = mesh.get_run(run_id).version, mesh.get_queue().version
    assert list(mesh.snapshots.get(run_id))  # type: ignore[union-attr]
    assert list(mesh.snapshots.get(queue_id("default")))  # type: ignore[union-attr]
    with_snapshots = (
        state(mesh.repository.get(run_id, version=run_version)),
        state(mesh.repository.get(queue_id("default"), version=queue_version)),
    )

    delete_snapshots(mesh)

    assert not list(mesh.snapshots.get(run_id))  # type: ignore[union-attr]
    without = (
        state(mesh.repository.get(run_id, version=run_version)),
        state(mesh.repository.get(queue_id("default"), version=queue_version)),
    )
    assert without == with_snapshots


def test_thousands_of_events_load_from_their_snapshot(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, _ = start_run(mesh)
    queue, run = mesh.get_queue(), mesh.get_run(run_id)
    for n in range(1500):
        key = runnable_key(run_id, f"s{n}", 1)
        queue.schedule(
            run_id=run_id,
            runnable_key=key,
            step=f"s{n}",
            attempt_number=1,
            visible_at=T0,
            now=T0,
        )
        queue.claim(
            key,
            claim_id=f"c{n}",
            claim_token_hash=hash_claim_token("t"),
            owner_id="w",
            lease_for=LEASE,
            now=T0,
        )
        run.receive_command("note", payload={"n": n}, now=T0)
        if n % 100 == 99:
            mesh.save(queue, run)
    mesh.save(queue, run)
    assert mesh.queue_snapshots.wait(10)
    fresh = open_mesh()
    replayed_from: list[int | None] = []
    original_get = fresh.repository.event_store.get

    def spy(originator_id: Any, **kwargs: Any) -> Any:
        replayed_from.append(kwargs.get("gt"))
        return original_get(originator_id, **kwargs)

    fresh.repository.event_store.get = spy  # type: ignore[method-assign]
    loaded_queue = fresh.repository.get(queue_id("default"), version=queue.version)
    loaded_run = fresh.repository.get(run_id, version=run.version)

    assert queue.version > 3000 and run.version > 1500
    # a queue is snapshotted more rarely as its live state grows (1,500 live attempts here)
    bounds = (queue_snapshot_interval(len(queue)), 100)
    assert bounds[0] == 1501
    assert all(
        gt is not None and gt >= v - bound
        for gt, v, bound in zip(replayed_from, (queue.version, run.version), bounds, strict=True)
    )
    assert state(loaded_queue) == state(queue) and state(loaded_run) == state(run)


def _insert_raw(
    mesh: SquidMesh, run_id: UUID, version: int, topic: str, state_bytes: bytes
) -> None:
    mesh.recorder.insert_events(
        [
            StoredEvent(
                originator_id=run_id, originator_version=version, topic=topic, state=state_bytes
            )
        ]
    )


def test_undecodable_event_raises_a_typed_error_naming_aggregate_and_version(
    open_mesh: OpenMesh,
) -> None:
    mesh = open_mesh()
    run_id, _ = start_run(mesh)
    _insert_raw(mesh, run_id, 4, WorkflowRun.CommandReceived.TOPIC, b"{not json")

    with pytest.raises(CorruptedEvent) as caught:
        open_mesh().repository.get(run_id, version=4)

    error = caught.value
    assert error.code == "invalid_journal_entry"
    assert (error.aggregate, error.version, error.originator_id) == ("WorkflowRun", 4, str(run_id))


def test_event_missing_a_field_loads_as_a_malformed_entry_anomaly(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, _ = start_run(mesh)
    run = mesh.get_run(run_id)
    run.receive_command("cancel_run", now=T0)
    stored = mesh.mapper.to_stored_event(run.collect_events()[0])
    payload = json.loads(stored.state)
    del payload["signal_type"]
    _insert_raw(mesh, run_id, stored.originator_version, stored.topic, json.dumps(payload).encode())

    loaded = open_mesh().repository.get(run_id, version=stored.originator_version)

    assert [a["reason"] for a in loaded.anomalies] == ["malformed_entry"]
    assert loaded.anomalies[0]["missing_fields"] == ["signal_type"]
    assert len(loaded.command_history) == 1


def test_anomalous_history_written_directly_loads_with_named_anomalies(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    run_id, keys = start_run(mesh)
    queue, run = mesh.get_queue(), mesh.get_run(run_id)
    queue.trigger_event(
        DispatchQueue.AttemptHeartbeat,
        runnable_key=keys[0],
        claim_id="x",
        claim_token_hash=hash_claim_token("x"),
        lease_until=T0 + LEASE,
        timestamp=T0,
    )
    queue.trigger_event(
        DispatchQueue.AttemptCompleted,
        runnable_key="ghost",
        claim_id="x",
        claim_token_hash=hash_claim_token("x"),
        result={},
        timestamp=T0,
    )
    run.end(TerminalStatus.FAILED, now=T0)
    run.trigger_event(
        WorkflowRun.ManualStepPaused, step="late", kind="pause", metadata={}, timestamp=T0
    )
    mesh.save(run, queue)

    reader = open_mesh()
    assert [a["reason"] for a in reader.get_queue().anomalies] == [
        "stale_claim",
        "unknown_runnable_intent",
    ]
    assert [a["reason"] for a in reader.get_run(run_id).anomalies] == ["terminal_run"]


def test_run_lookups_refuse_bad_and_unknown_ids(open_mesh: OpenMesh) -> None:
    mesh = open_mesh()
    start_run(mesh)

    with pytest.raises(InvalidRunId):
        mesh.get_run("not-a-uuid")
    with pytest.raises(RunNotFound):
        mesh.get_run(uuid4())
    with pytest.raises(RunNotFound):
        mesh.get_run(queue_id("default"))


def test_clock_under_freezegun_stamps_events(database_url: str) -> None:
    with freeze_time("2026-05-01T08:30:00Z"):
        with SquidMesh.open(database_url, transcodings=freezegun_transcodings()) as mesh:
            run_id, _ = start_run(mesh)
            run = mesh.get_run(run_id)

    assert run.started_at == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    assert run.command_history[0]["occurred_at"] == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


def test_open_refuses_unknown_urls_and_naive_times() -> None:
    for url in ("mysql://x/y", "sqlite://", "postgresql://localhost", "nonsense"):
        with pytest.raises(InvalidArgument):
            SquidMesh.open(url)
    with SquidMesh.open("memory://") as mesh, pytest.raises(InvalidArgument):
        mesh.now(datetime(2026, 1, 1))
