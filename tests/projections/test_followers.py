"""Followers on every backend: rows per run, lookups, rebuild, failure isolation, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from projection_helpers import drain, start_indexed_run, start_runs, tables
from projection_workflows import Audit, Billing

from squidmesh_es import SquidMesh
from squidmesh_es.domain import WorkflowRun
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import PROJECTIONS, Projections, RunCatalog
from squidmesh_es.projections._contract import CATALOG, INSPECTION, STATE
from squidmesh_es.read_model import RunSummary
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh


@pytest.fixture
def projections(mesh: SquidMesh) -> Iterator[Projections]:
    with Projections(mesh, batch_size=7) as followers:
        yield followers


def test_catalog_has_a_row_per_run_with_its_current_status(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 6)
    drain(mesh, clock)

    projections.catch_up()

    rows = {r["run_id"]: r for r in projections.view.dump(CATALOG)}
    assert set(rows) == set(ids)
    for run_id in ids:
        snapshot = mesh.inspect_run(run_id)
        row = rows[run_id]
        assert row["status"] == snapshot.status.value
        assert row["terminal_status"] == snapshot.terminal_status
        assert row["workflow"] == snapshot.workflow
        assert row["queue"] == "default"
        assert row["run_version"] == mesh.get_run(run_id).version
        assert row["started_at"] == snapshot.started_at
    assert {r["status"] for r in rows.values()} == {"completed", "failed"}


def test_rows_of_some_runs_hold_the_columns_asked_for(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 3)
    projections.catch_up()
    full = projections.view.rows(CATALOG, ids[:2])

    narrow = projections.view.rows(CATALOG, [*ids[:2], str(uuid4())], columns=["run_version"])

    assert set(full) == set(narrow) == set(ids[:2])
    assert set(full[ids[0]]) == set(CATALOG.column_names)
    assert narrow == {i: {"run_id": i, "run_version": full[i]["run_version"]} for i in ids[:2]}


def test_list_runs_pages_newest_first_without_gaps_or_repeats(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 11)
    projections.catch_up()

    seen: list[str] = []
    after = None
    while True:
        page = projections.list_runs(limit=4, after=after)
        seen += [r.run_id for r in page]
        if page.next_cursor is None:
            break
        after = page.next_cursor

    assert seen == list(reversed(ids))


def test_list_runs_filters_by_catalog_columns(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 8)
    drain(mesh, clock)
    projections.catch_up()

    audits = projections.list_runs(workflow=Audit)
    failed = projections.list_runs(status="failed", workflow="Billing")
    by_trigger = projections.list_runs(trigger="bill", queue="default")

    assert [r.run_id for r in audits] == [ids[5], ids[2]]
    assert {r.run_id for r in failed} == {ids[1]}
    assert len(by_trigger) == 6
    assert projections.list_runs(queue="elsewhere") == []


def test_list_rows_carry_no_inputs_outputs_errors_claims_or_keys(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    start_runs(mesh, clock, 4)
    drain(mesh, clock)
    projections.catch_up()

    for summary in projections.list_runs():
        assert isinstance(summary, RunSummary)
        dumped = str(summary.model_dump(mode="json"))
        assert "inv-" not in dumped and "key-" not in dumped and "gateway" not in dumped


def test_index_finds_runs_by_idempotency_key_declared_key_schedule_and_parent(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 3)
    parent = start_indexed_run(mesh, clock, invoice_id="inv-77", priority=2)
    child = start_indexed_run(mesh, clock, parent=parent, invoice_id="inv-78", urgent=True)
    projections.catch_up()

    assert [r.run_id for r in projections.list_runs(idempotency_key="key-2")] == [ids[2]]
    assert [r.run_id for r in projections.list_runs(index={"invoice_id": "inv-77"})] == [parent]
    assert [r.run_id for r in projections.list_runs(index={"priority": 2})] == [parent]
    assert [r.run_id for r in projections.list_runs(index={"urgent": True})] == [child]
    assert [r.run_id for r in projections.list_runs(parent_run_id=parent)] == [child]
    assert projections.list_runs(index={"invoice_id": "inv-77", "priority": 3}) == []
    keys = {
        (r["key"], r["value"])
        for r in projections.view.dump(projections.projections["run_index"].tables[0])
        if r["run_id"] == child
    }
    assert ("schedule_key", "nightly-1") in keys and ("parent_run_id", parent) in keys


def test_list_runs_refuses_bad_arguments(projections: Projections) -> None:
    with pytest.raises(InvalidArgument):
        projections.list_runs(limit=0)
    with pytest.raises(InvalidArgument):
        projections.list_runs(status="sleeping")
    with pytest.raises(InvalidArgument):
        projections.list_runs(after="not-a-cursor")
    with pytest.raises(InvalidArgument):
        projections.list_runs(parent_run_id="nope")


def test_inspection_holds_the_snapshot_as_of_the_last_event(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 3)
    drain(mesh, clock)
    projections.catch_up()

    rows = {r["run_id"]: r for r in projections.view.dump(INSPECTION)}
    for run_id in ids:
        document = rows[run_id]["document"]
        expected = mesh.inspect_run(run_id, now=rows[run_id]["updated_at"]).model_dump(mode="json")
        expected["definition_matches"] = None  # the follower has no workflow code
        # The queue version is the one of the run's last queue event, not the queue's head.
        expected["thread_revisions"]["dispatch"] = rows[run_id]["queue_version"]
        assert document == expected


def test_inspection_of_runs_on_queue_partitions(open_mesh: OpenMesh, clock: ManualClock) -> None:
    mesh = open_mesh(queue_partitions=3)
    ids = start_runs(mesh, clock, 9)
    drain(mesh, clock)
    with Projections(mesh, batch_size=5) as projections:
        projections.catch_up()
        rows = {r["run_id"]: r for r in projections.view.dump(INSPECTION)}

    assert len({mesh.get_run(r).partition for r in ids}) > 1
    for run_id in ids:
        document = rows[run_id]["document"]
        expected = mesh.inspect_run(run_id, now=rows[run_id]["updated_at"]).model_dump(mode="json")
        expected["definition_matches"] = None
        expected["thread_revisions"]["dispatch"] = rows[run_id]["queue_version"]
        assert document == expected
        assert document["status"] in {"completed", "failed"}


def test_embedded_followers_keep_up_after_each_command(mesh: SquidMesh, clock: ManualClock) -> None:
    projections = Projections.attach(mesh)
    run_id = mesh.start(Billing, {"invoice_id": "inv-1"}).run_id
    projections.after_command()

    assert [r.status.value for r in projections.list_runs()] == ["running"]
    drain(mesh, clock, projections)
    assert [(r.run_id, r.status.value) for r in projections.list_runs()] == [(run_id, "completed")]
    assert all(s.lag == 0 and s.state == "caught_up" for s in projections.status())
    projections.close()


def test_rebuild_equals_the_incremental_build(
    open_mesh: OpenMesh, mesh: SquidMesh, clock: ManualClock
) -> None:
    incremental = Projections(mesh, batch_size=3)
    for _ in range(3):
        start_runs(mesh, clock, 4)
        incremental.after_command()
        drain(mesh, clock, incremental)
    start_indexed_run(mesh, clock, invoice_id="inv-9")
    incremental.catch_up()
    built = tables(incremental)

    rebuilt = incremental.rebuild()

    assert tables(incremental) == built
    assert set(rebuilt) == {p.name for p in PROJECTIONS}
    assert all(s.lag == 0 for s in incremental.status())
    incremental.close()


def test_a_failing_projection_stops_alone_and_resumes_from_its_position(
    mesh: SquidMesh, clock: ManualClock, projections: Projections, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_runs(mesh, clock, 2)
    projections.catch_up()
    before = projections.view.position("run_catalog")

    def broken(self: RunCatalog, snapshot: Any) -> dict[str, Any]:
        raise RuntimeError("catalog bug")

    monkeypatch.setattr(RunCatalog, "row", broken)
    run_id = mesh.start(Billing, {"invoice_id": "inv-late"}).run_id
    projections.after_command()  # must not raise: the command committed

    status = {s.name: s for s in projections.status()}
    assert status["run_catalog"].state == "failed"
    assert status["run_catalog"].error_message == "RuntimeError: catalog bug"
    assert status["run_catalog"].error_position == before
    assert status["run_catalog"].position == before
    assert status["run_inspection"].state == "caught_up"
    assert status["run_index"].state == "caught_up"
    projections.after_command()  # stopped: skipped, still no error
    assert mesh.inspect_run(run_id).status.value == "running"

    monkeypatch.undo()
    projections.resume("run_catalog")

    status = {s.name: s for s in projections.status()}
    assert status["run_catalog"].state == "caught_up" and status["run_catalog"].error_code is None
    assert run_id in [r.run_id for r in projections.list_runs()]


def test_a_stopped_projection_stores_its_error_redacted(
    mesh: SquidMesh, clock: ManualClock, projections: Projections, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: RunCatalog, snapshot: Any) -> dict[str, Any]:
        raise RuntimeError("cannot reach postgresql://app:hunter2@db/prod")

    monkeypatch.setattr(RunCatalog, "row", broken)
    mesh.start(Billing, {"invoice_id": "inv-1"})
    projections.after_command()

    status = {s.name: s for s in projections.status()}
    assert status["run_catalog"].error_message == (
        "RuntimeError: cannot reach postgresql://app:[REDACTED]@db/prod"
    )


@pytest.mark.shared_journal
def test_a_crash_between_rows_and_tracking_leaves_nothing_and_counts_once(
    backend: str,
    mesh: SquidMesh,
    clock: ManualClock,
    projections: Projections,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = start_runs(mesh, clock, 3)
    original = RunCatalog.changes

    def crash_after_rows(self: RunCatalog, events: Any) -> Any:
        changes = original(self, events)
        changes.add(STATE, {"projection": None})  # fails after the catalog rows went in
        return changes

    monkeypatch.setattr(RunCatalog, "changes", crash_after_rows)
    projections.catch_up("run_catalog")
    failed = {s.name: s for s in projections.status()}["run_catalog"]
    assert failed.state == "failed" and failed.position == 0
    assert projections.view.dump(CATALOG) == []

    monkeypatch.undo()
    projections.resume("run_catalog")

    rows = projections.view.dump(CATALOG)
    assert sorted(r["run_id"] for r in rows) == sorted(ids)
    followed = mesh.recorder.select_notifications(start=1, limit=10_000, topics=RunCatalog.topics)
    assert projections.view.state("run_catalog")["events_applied"] == len(followed)


@pytest.mark.shared_journal
def test_a_crash_inside_a_batch_writes_none_of_it_and_resuming_counts_it_once(
    backend: str,
    mesh: SquidMesh,
    clock: ManualClock,
    projections: Projections,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_runs(mesh, clock, 6)
    drain(mesh, clock)
    original = RunCatalog.changes
    batches: list[Any] = []

    def crash_in_the_third_batch(self: RunCatalog, events: Any) -> Any:
        changes = original(self, events)
        batches.append(events)
        if len(batches) == 3:  # the database refuses a row amid the batch's rows
            rows = changes.upserts[CATALOG]
            rows.insert(len(rows) // 2, {**rows[0], "run_id": None})
        return changes

    monkeypatch.setattr(RunCatalog, "changes", crash_in_the_third_batch)
    projections.catch_up("run_catalog")

    failed = {s.name: s for s in projections.status()}["run_catalog"]
    assert failed.state == "failed"
    assert failed.events_applied == len(batches[0]) + len(batches[1])
    assert failed.position == failed.error_position > 0  # where the third batch began
    written = {r["run_id"]: r["run_version"] for r in projections.view.dump(CATALOG)}
    seen = {
        str(e.originator_id): e.originator_version
        for b in batches[:2]
        for e in b
        if isinstance(e, WorkflowRun.Event)
    }
    assert written == seen  # the rows of the first two batches, none of the third's

    monkeypatch.undo()
    projections.resume("run_catalog")  # the same follower, its run and queue states ahead
    resumed = projections.view.dump(CATALOG)
    projections.rebuild("run_catalog")  # from scratch

    assert projections.view.dump(CATALOG) == resumed
    followed = mesh.recorder.select_notifications(start=1, limit=10_000, topics=RunCatalog.topics)
    status = {s.name: s for s in projections.status()}["run_catalog"]
    assert status.events_applied == len(followed) and status.lag == 0


def test_a_batch_applied_twice_is_refused_and_changes_nothing(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    start_runs(mesh, clock, 2)
    projections.catch_up()
    position = projections.view.position("run_catalog")
    before = tables(projections)
    catalog = projections.projections["run_catalog"]
    last = mesh.recorder.select_notifications(start=position, limit=1)[0]

    with pytest.raises(IntegrityError):
        catalog.process_batch(
            [mesh.mapper.to_domain_event(last)], Tracking("run_catalog", position)
        )

    assert tables(projections) == before


def test_catch_up_of_an_unknown_projection_is_refused(projections: Projections) -> None:
    with pytest.raises(InvalidArgument):
        projections.catch_up("run_nowhere")
