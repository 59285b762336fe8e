"""Cron runs found by their schedule identity: ``list_runs`` and ``squidmesh list``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.projections import Projections
from squidmesh_es.read_model import RunSummary
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import (
    COMPLETE,
    CronIdempotency,
    JSONObject,
    Ok,
    Step,
    StepContext,
    Workflow,
    cron,
    manual,
    step,
    transition,
)

WINDOW = {"start_at": "2026-03-01T21:00:00Z", "end_at": "2026-03-02T21:00:00Z"}


class Channel(BaseModel):
    channel: str = "ops"


class Send(Step):
    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        return Ok({"sent": True})


class Nightly(Workflow):
    name = "schedule_lookup.nightly"
    payload = Channel
    triggers = [
        cron("nightly", "0 21 * * *", idempotency=CronIdempotency.RETURN_EXISTING_RUN),
        cron("hourly", "@hourly"),
        manual("now"),
    ]

    send = step(Send)
    transitions = [transition(send, to=COMPLETE)]


class Runs:
    """The cron runs of one journal, named by how they were delivered."""

    def __init__(self, mesh: SquidMesh, clock: ManualClock) -> None:
        mesh.register(Nightly)
        self.windowed = mesh.start_cron(Nightly, "nightly", intended_window=WINDOW)
        clock.advance(timedelta(seconds=1))
        self.keyed = mesh.start_cron(
            Nightly, "nightly", signal_id="k8s-0302", idempotency_key="digest-0302"
        )
        clock.advance(timedelta(seconds=1))
        self.signalled = mesh.start_cron(Nightly, "hourly", signal_id="boot-7")
        clock.advance(timedelta(seconds=1))
        self.manual = mesh.start(Nightly, {}, trigger="now", idempotency_key="by-hand")
        clock.advance(timedelta(seconds=1))
        mesh.drain()
        self.replay = mesh.replay(self.windowed.run_id)


@pytest.fixture
def runs(mesh: SquidMesh, clock: ManualClock) -> Runs:
    return Runs(mesh, clock)


@pytest.fixture
def projections(mesh: SquidMesh, runs: Runs) -> Iterator[Projections]:
    with Projections(mesh) as followers:
        followers.catch_up()
        yield followers


def ids(found: Sequence[RunSummary]) -> list[str]:
    return [r.run_id for r in found]


def test_schedule_key_finds_the_run_deduplicated_by_it(
    runs: Runs, projections: Projections
) -> None:
    by_signal_id = projections.list_runs(schedule_key=runs.windowed.signal_id)
    by_caller_key = projections.list_runs(schedule_key="digest-0302")

    assert ids(by_signal_id) == [runs.windowed.run_id]
    assert ids(by_caller_key) == [runs.keyed.run_id]


def test_schedule_key_is_the_callers_key_not_the_signal_id_when_both_were_given(
    runs: Runs, projections: Projections
) -> None:
    assert projections.list_runs(schedule_key="k8s-0302") == []
    assert ids(projections.list_runs(schedule_signal_id="k8s-0302")) == [runs.keyed.run_id]


def test_schedule_signal_id_finds_the_activation_and_its_replays(
    runs: Runs, projections: Projections
) -> None:
    found = projections.list_runs(schedule_signal_id=runs.windowed.signal_id)

    assert ids(found) == [runs.replay.run_id, runs.windowed.run_id]  # newest first


def test_a_trigger_without_idempotency_has_a_signal_id_but_no_schedule_key(
    runs: Runs, projections: Projections
) -> None:
    assert ids(projections.list_runs(schedule_signal_id="boot-7")) == [runs.signalled.run_id]
    assert projections.list_runs(schedule_key="boot-7") == []


def test_schedule_filters_combine_with_each_other_and_the_rest(
    runs: Runs, projections: Projections
) -> None:
    both = projections.list_runs(schedule_key="digest-0302", schedule_signal_id="k8s-0302")
    crossed = projections.list_runs(schedule_key="digest-0302", schedule_signal_id="boot-7")
    elsewhere = projections.list_runs(schedule_key="digest-0302", queue="elsewhere")

    assert ids(both) == [runs.keyed.run_id]
    assert crossed == [] and elsewhere == []


def test_manual_runs_have_no_schedule_identity(runs: Runs, projections: Projections) -> None:
    assert projections.list_runs(schedule_key="by-hand") == []
    assert ids(projections.list_runs(idempotency_key="by-hand")) == [runs.manual.run_id]


def test_a_schedule_value_that_is_not_a_string_is_refused(projections: Projections) -> None:
    with pytest.raises(InvalidArgument) as refused:
        projections.list_runs(schedule_key=7)
    assert refused.value.option == "schedule_key"
    with pytest.raises(InvalidArgument):
        projections.list_runs(schedule_signal_id=["boot-7"])


def test_squidmesh_list_runs_takes_the_schedule_filters(mesh: SquidMesh, runs: Runs) -> None:
    with Projections.attach(mesh):
        found = mesh.list_runs(schedule_key="digest-0302")
        signalled = mesh.list_runs(workflow=Nightly, schedule_signal_id="boot-7")

    assert ids(found) == [runs.keyed.run_id]
    assert ids(signalled) == [runs.signalled.run_id]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["list", *args])
    return result.exit_code, result.output


@pytest.mark.shared_journal
def test_the_list_command_filters_by_schedule_key(database_url: str, runs: Runs) -> None:
    code, out = invoke("--database-url", database_url, "--schedule-key", "digest-0302", "--json")

    assert code == 0, out
    assert [r["run_id"] for r in json.loads(out)["runs"]] == [runs.keyed.run_id]


@pytest.mark.shared_journal
def test_the_list_command_filters_by_schedule_signal_id(database_url: str, runs: Runs) -> None:
    signal_id = str(runs.windowed.signal_id)
    code, out = invoke("--database-url", database_url, "--schedule-signal-id", signal_id)

    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("RUN ")
    assert [line.split()[0] for line in lines[1:]] == [runs.replay.run_id, runs.windowed.run_id]


@pytest.mark.shared_journal
def test_the_list_command_filters_by_idempotency_key(
    database_url: str, runs: Runs, mesh: SquidMesh
) -> None:
    started = mesh.start(Nightly, trigger="now", idempotency_key="by-hand-1")

    code, out = invoke("--database-url", database_url, "--idempotency-key", "by-hand-1", "--json")

    assert code == 0, out
    assert [r["run_id"] for r in json.loads(out)["runs"]] == [started.run_id]
