"""Rebuild without downtime: new tables beside the live ones, switched in once caught up."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from projection_helpers import drain, start_runs, tables
from projection_workflows import Billing

from squidmesh_es import SquidMesh
from squidmesh_es.cli._projections import ProgressLine, render_progress
from squidmesh_es.projections import PROJECTIONS, Projections, RunCatalog
from squidmesh_es.projections._contract import CATALOG
from squidmesh_es.projections._memory_view import MemoryProjectionView
from squidmesh_es.testing import ManualClock

from conftest import OpenMesh


@pytest.fixture
def projections(mesh: SquidMesh) -> Iterator[Projections]:
    with Projections(mesh, batch_size=7) as followers:
        yield followers


def derived(mesh: SquidMesh) -> dict[str, list[dict[str, object]]]:
    with Projections(mesh, view=MemoryProjectionView()) as fresh:
        fresh.catch_up()
        return {k: v for k, v in tables(fresh).items() if k != "squidmesh_projection_state"}


def followed(mesh: SquidMesh, projection: type[RunCatalog] | Any) -> int:
    return len(mesh.recorder.select_notifications(start=1, limit=100_000, topics=projection.topics))


def test_readers_keep_the_live_rows_until_the_rebuilt_ones_take_their_place(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    ids = start_runs(mesh, clock, 6)
    drain(mesh, clock)
    projections.catch_up()
    seen: list[int] = []

    def read_meanwhile(name: str, position: int, head: int, applied: int) -> None:
        seen.append(len(projections.list_runs(limit=50)))

    applied = projections.rebuild("run_catalog", progress=read_meanwhile)

    assert len(seen) > 2 and set(seen) == {len(ids)}  # several batches, never a gap
    assert applied == {"run_catalog": followed(mesh, RunCatalog)}
    assert {k: v for k, v in tables(projections).items() if k in derived(mesh)} == derived(mesh)
    status = {s.name: s for s in projections.status()}
    assert set(status) == {p.name for p in PROJECTIONS}
    assert status["run_catalog"].lag == 0
    assert status["run_catalog"].events_applied == followed(mesh, RunCatalog)


def test_rebuilding_twice_gives_the_same_tables_and_counts(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    start_runs(mesh, clock, 4)
    drain(mesh, clock)
    projections.catch_up()
    built = tables(projections)

    projections.rebuild()
    projections.rebuild()

    assert tables(projections) == built
    assert all(s.lag == 0 and s.state == "caught_up" for s in projections.status())


@pytest.mark.shared_journal
def test_readers_in_another_thread_never_see_an_empty_catalog(
    mesh: SquidMesh, clock: ManualClock, open_mesh: OpenMesh
) -> None:
    ids = start_runs(mesh, clock, 12)
    drain(mesh, clock)
    with Projections(mesh) as live:
        live.catch_up()
    counts: list[int] = []
    done = threading.Event()

    def reader() -> None:
        with Projections(open_mesh()) as other:
            while not done.is_set():
                counts.append(len(other.list_runs(limit=50)))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        with Projections(mesh, batch_size=5) as rebuilding:
            for _ in range(3):
                rebuilding.rebuild("run_catalog")
    finally:
        done.set()
        thread.join(timeout=30)

    assert counts and set(counts) == {len(ids)}


def test_a_live_follower_moving_on_meanwhile_is_caught_up_before_the_switch(
    mesh: SquidMesh, clock: ManualClock, projections: Projections
) -> None:
    start_runs(mesh, clock, 3)
    projections.catch_up()
    with Projections(mesh, view=projections.view) as live:
        moved: list[int] = []

        def live_moves_on(name: str, position: int, head: int, applied: int) -> None:
            if not moved:
                mesh.start(Billing, {"invoice_id": "late-1"})
                mesh.start(Billing, {"invoice_id": "late-2"})
                moved.append(live.catch_up()["run_catalog"])

        projections.rebuild("run_catalog", progress=live_moves_on)

        assert moved and moved[0] > 0
        assert len(projections.list_runs(limit=50)) == 5
        assert tables(projections)[CATALOG.name] == derived(mesh)[CATALOG.name]
        status = {s.name: s for s in projections.status()}["run_catalog"]
        assert status.lag == 0
        assert status.events_applied == followed(mesh, RunCatalog)  # nothing counted twice


def test_a_failed_rebuild_leaves_the_live_rows_and_shows_in_status(
    mesh: SquidMesh,
    clock: ManualClock,
    projections: Projections,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_runs(mesh, clock, 3)
    projections.catch_up()
    before = tables(projections)[CATALOG.name]

    def broken(self: RunCatalog, snapshot: Any) -> dict[str, Any]:
        raise RuntimeError("catalog bug")

    monkeypatch.setattr(RunCatalog, "row", broken)
    projections.rebuild("run_catalog")

    assert tables(projections)[CATALOG.name] == before
    status = {s.name: s for s in projections.status()}
    assert status["run_catalog"].state == "caught_up"
    assert status["run_catalog.rebuild"].state == "failed"
    assert status["run_catalog.rebuild"].error_message == "RuntimeError: catalog bug"

    monkeypatch.undo()
    mesh.start(Billing, {"invoice_id": "late"})
    projections.rebuild("run_catalog")

    status = {s.name: s for s in projections.status()}
    assert "run_catalog.rebuild" not in status
    assert len(projections.list_runs(limit=50)) == 4


def test_progress_shows_events_per_second_and_time_left() -> None:
    line = render_progress("run_catalog", 250, 1000, 200, elapsed=2.0)

    assert line.startswith("run_catalog ")
    assert "[######------------------]  25%" in line
    assert "200 events  100 events/s  ETA 6s" in line
    assert render_progress("run_index", 9, 9, 3, elapsed=0.0).endswith("done")


def test_progress_off_a_terminal_prints_a_line_a_second_and_the_last() -> None:
    stream = io.StringIO()
    times = iter([0.4, 0.8, 1.5, 1.6])
    progress = ProgressLine(stream, clock=lambda: next(times))

    for position in (100, 200, 300, 400):
        progress("run_catalog", position, 400, position)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # the first batch, the one a second later, the last
    assert lines[-1].endswith("done")
