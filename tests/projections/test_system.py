"""The views as library followers: System runners and ProjectionRunner, on every backend.

Each test compares the views a library runner kept with what the embedded follower
derives from the same journal (into a memory view), table by table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.system import MultiThreadedRunner, Runner, SingleThreadedRunner, System
from projection_workflows import Audit, Billing

from squidmesh_es import SquidMesh
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import (
    FOLLOWERS,
    TABLES,
    Projections,
    RunCatalog,
    RunCatalogFollower,
    RunIndexFollower,
    RunInspectionFollower,
    RunProjectionRunner,
    ViewFollower,
    system,
)
from squidmesh_es.projections._contract import CATALOG, STATE
from squidmesh_es.projections._memory_view import MemoryProjectionView
from squidmesh_es.runtime import journal_env

RUNNERS = {"single": SingleThreadedRunner, "multi": MultiThreadedRunner}


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    SquidMesh.open(database_url).close()  # creates the Postgres schema of the URL
    return journal_env(database_url)


@pytest.fixture(params=sorted(RUNNERS))
def runner_class(request: pytest.FixtureRequest) -> type[Runner[Any]]:
    runner: type[Runner[Any]] = RUNNERS[request.param]
    return runner


@pytest.fixture
def new_runner(env: dict[str, str]) -> Iterator[Callable[..., Runner[Any]]]:
    made: list[Runner[Any]] = []

    def make(runner_class: type[Runner[Any]], of: System | None = None) -> Runner[Any]:
        runner = runner_class(of or system(), env=env)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        if runner.is_started:
            runner.stop()


def start_runs(mesh: SquidMesh, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        workflow = Audit if i % 3 == 2 else Billing
        payload = {"invoice_id": f"{prefix}-{i}", "fail": i % 4 == 1}
        key = f"{prefix}-key-{i}" if i % 2 == 0 else None
        ids.append(mesh.start(workflow, payload, idempotency_key=key).run_id)
    return ids


def drain(mesh: SquidMesh) -> None:
    while mesh.execute_next(owner_id="w1") is not None:
        pass


def followers(runner: Runner[Any]) -> list[ViewFollower]:
    return [runner.get(f) for f in FOLLOWERS]


def caught_up(runner: Runner[Any]) -> bool:
    return all(f.status().lag == 0 for f in followers(runner))


def kept(runner: Runner[Any]) -> dict[str, list[dict[str, Any]]]:
    """Every view table, each from the follower that keeps it."""
    views = {t.name: f.view for f in followers(runner) for t in f.projection_class.tables}
    return {
        name: view.dump(next(t for t in TABLES if t.name == name)) for name, view in views.items()
    }


def derived(mesh: SquidMesh) -> dict[str, list[dict[str, Any]]]:
    """The same tables from the embedded follower, into a memory view."""
    with Projections(mesh, view=MemoryProjectionView()) as embedded:
        embedded.catch_up()
        return {t.name: embedded.view.dump(t) for t in TABLES if t is not STATE}


def test_system_runners_keep_the_rows_the_embedded_follower_derives(
    runner_class: type[Runner[Any]], new_runner: Callable[..., Runner[Any]]
) -> None:
    runner = new_runner(runner_class)
    mesh = runner.get(SquidMesh)
    start_runs(mesh, 4, "before")  # recorded while no follower runs
    runner.start()
    start_runs(mesh, 5, "after")
    drain(mesh)

    wait_until(lambda: caught_up(runner))

    assert kept(runner) == derived(mesh)
    assert len(kept(runner)[CATALOG.name]) == 9


def test_followers_catch_up_on_start_with_events_recorded_before_it(
    runner_class: type[Runner[Any]], new_runner: Callable[..., Runner[Any]]
) -> None:
    runner = new_runner(runner_class)
    mesh = runner.get(SquidMesh)
    ids = start_runs(mesh, 3, "backlog")
    drain(mesh)

    runner.start()  # no write follows: the library's runners would wait for one

    assert caught_up(runner)
    rows = runner.get(RunCatalogFollower).view.dump(CATALOG)
    assert sorted(r["run_id"] for r in rows) == sorted(ids)


def test_a_failing_follower_never_fails_the_leaders_save(
    runner_class: type[Runner[Any]],
    new_runner: Callable[..., Runner[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = new_runner(runner_class)
    runner.start()
    mesh = runner.get(SquidMesh)
    start_runs(mesh, 2, "fine")
    wait_until(lambda: caught_up(runner))
    catalog = runner.get(RunCatalogFollower)
    before = catalog.status().position

    def broken(self: RunCatalog, snapshot: Any) -> dict[str, Any]:
        raise RuntimeError("catalog bug")

    monkeypatch.setattr(RunCatalog, "row", broken)
    run_id = mesh.start(Billing, {"invoice_id": "late"}).run_id  # the save returns
    drain(mesh)

    wait_until(lambda: catalog.status().state == "failed")
    status = catalog.status()
    assert status.error_message == "RuntimeError: catalog bug"
    assert status.position == before
    assert mesh.inspect_run(run_id).status.value == "completed"
    index, inspection = runner.get(RunIndexFollower), runner.get(RunInspectionFollower)
    wait_until(lambda: index.status().lag == 0 and inspection.status().lag == 0)
    if isinstance(runner, MultiThreadedRunner):
        assert not runner.has_errored.is_set()  # the follower's thread lives on

    monkeypatch.undo()
    catalog.resume()

    assert catalog.status().state == "caught_up"
    assert run_id in [r["run_id"] for r in catalog.view.dump(CATALOG)]


@pytest.mark.shared_journal
def test_a_crash_between_rows_and_tracking_under_a_runner_counts_once(
    new_runner: Callable[..., Runner[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = new_runner(SingleThreadedRunner)
    mesh = runner.get(SquidMesh)
    ids = start_runs(mesh, 3, "crash")
    original = RunCatalog.changes

    def crash_after_rows(self: RunCatalog, events: Any) -> Any:
        changes = original(self, events)
        changes.add(STATE, {"projection": None})  # fails after the catalog rows went in
        return changes

    monkeypatch.setattr(RunCatalog, "changes", crash_after_rows)
    runner.start()
    catalog = runner.get(RunCatalogFollower)
    assert catalog.status().state == "failed" and catalog.status().position == 0
    assert catalog.view.dump(CATALOG) == []

    monkeypatch.undo()
    catalog.resume()

    assert sorted(r["run_id"] for r in catalog.view.dump(CATALOG)) == sorted(ids)
    followed = mesh.recorder.select_notifications(start=1, limit=10_000, topics=RunCatalog.topics)
    assert catalog.view.state("run_catalog")["events_applied"] == len(followed)


def test_a_stopped_follower_is_retried_on_a_later_prompt_after_its_interval(
    new_runner: Callable[..., Runner[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = new_runner(SingleThreadedRunner)
    runner.start()
    mesh = runner.get(SquidMesh)
    catalog = runner.get(RunCatalogFollower)

    def broken(self: RunCatalog, snapshot: Any) -> dict[str, Any]:
        raise RuntimeError("catalog bug")

    monkeypatch.setattr(RunCatalog, "row", broken)
    mesh.start(Billing, {"invoice_id": "one"})
    assert catalog.status().state == "failed"
    monkeypatch.undo()
    mesh.start(Billing, {"invoice_id": "two"})
    assert catalog.status().state == "failed"  # still within the retry interval

    monkeypatch.setattr(RunCatalogFollower, "retry_interval", 0.0)
    mesh.start(Billing, {"invoice_id": "three"})

    assert catalog.status().state == "caught_up"
    assert len(catalog.view.dump(CATALOG)) == 3


@pytest.mark.shared_journal  # a memory view is private to its follower: nothing else reads it
def test_status_of_the_system_followers_is_what_the_cli_reads(
    new_runner: Callable[..., Runner[Any]],
) -> None:
    runner = new_runner(SingleThreadedRunner)
    runner.start()
    mesh = runner.get(SquidMesh)
    start_runs(mesh, 3, "status")
    drain(mesh)

    with Projections(mesh) as reader:
        statuses = {s.name: s for s in reader.status()}
        assert [r.run_id for r in reader.list_runs(limit=50)]

    assert all(s.state == "caught_up" for s in statuses.values())
    assert (
        statuses["run_catalog"].events_applied
        == runner.get(RunCatalogFollower).status().events_applied
    )


def test_system_is_led_by_the_journal_and_takes_a_host_subclass_and_followers() -> None:
    class Shop(SquidMesh):
        pass

    default = system()
    custom = system(Shop, followers=[RunCatalogFollower])

    assert default.leaders == ["SquidMesh"]
    assert default.followers == [f.name for f in FOLLOWERS]
    assert custom.edges == [("SquidMesh", "RunCatalogFollower")]
    assert custom.get_app_cls("SquidMesh") is Shop


def test_a_follower_follows_one_journal_only(new_runner: Callable[..., Runner[Any]]) -> None:
    runner = new_runner(SingleThreadedRunner)
    runner.start()
    mesh = runner.get(SquidMesh)
    catalog = runner.get(RunCatalogFollower)

    with pytest.raises(InvalidArgument):
        catalog.follow("Other", mesh.notification_log)


@pytest.mark.postgres_only
def test_projection_runner_keeps_the_rows_and_the_position_the_followers_share(
    database_url: str, env: dict[str, str]
) -> None:
    mesh = SquidMesh.open(database_url)
    start_runs(mesh, 3, "before")
    with Projections(mesh) as other:  # the tracking table exists, with other positions
        other.catch_up("run_index")
    try:
        with RunProjectionRunner(RunCatalog, env=env) as runner:
            start_runs(mesh, 3, "after")
            drain(mesh)
            expected = derived(mesh)[CATALOG.name]
            wait_until(lambda: runner.view.dump(CATALOG) == expected)
            assert runner.view.state("run_catalog")["events_applied"] == len(
                mesh.recorder.select_notifications(start=1, limit=10_000, topics=RunCatalog.topics)
            )

        start_runs(mesh, 2, "handover")
        with Projections(mesh) as follower:  # takes over from the runner's position
            follower.catch_up("run_catalog")
            status = {s.name: s for s in follower.status()}["run_catalog"]
            assert follower.view.dump(CATALOG) == derived(mesh)[CATALOG.name]
        followed = mesh.recorder.select_notifications(
            start=1, limit=10_000, topics=RunCatalog.topics
        )
        assert status.events_applied == len(followed)  # nothing counted twice
        assert status.lag == 0
        with Projections(mesh) as other:
            index = {s.name: s for s in other.status()}["run_index"]
            assert index.position > 0 and index.events_applied > 0  # untouched by the runner
    finally:
        mesh.close()


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/journal.db"])
def test_projection_runner_refuses_a_journal_that_cannot_subscribe(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgument):
        RunProjectionRunner(RunCatalog, env=journal_env(url.format(tmp=tmp_path)))
