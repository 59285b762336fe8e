"""``squidmesh list`` and ``squidmesh projections status|rebuild`` over a shared journal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from projection_helpers import drain, start_runs
from projection_workflows import Audit

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import COMPLETE, Deadline, Workflow, manual, pause, transition

from conftest import OpenMesh


@pytest.fixture
def journal(backend: str, database_url: str, mesh: SquidMesh, clock: ManualClock) -> str:
    start_runs(mesh, clock, 3)
    return database_url


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.shared_journal
def test_list_json_pages_runs_newest_first(journal: str) -> None:
    code, out = invoke("list", "--database-url", journal, "--json", "--limit", "2")
    assert code == 0, out
    page = json.loads(out)
    assert len(page["runs"]) == 2 and page["next_cursor"]
    code, out = invoke("list", "--database-url", journal, "--json", "--after", page["next_cursor"])
    assert code == 0 and len(json.loads(out)["runs"]) == 1


@pytest.mark.shared_journal
def test_list_refuses_a_bad_status_with_its_code(journal: str) -> None:
    code, out = invoke("list", "--database-url", journal, "--json", "--status", "asleep")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "invalid_option"


@pytest.mark.shared_journal
def test_status_and_rebuild_report_positions(journal: str) -> None:
    code, out = invoke("projections", "rebuild", "--database-url", journal, "--json")
    assert code == 0, out
    assert "run_catalog" in out and "events/s" in out  # the progress bar, on stderr
    code, out = invoke("projections", "rebuild", "--database-url", journal, "--quiet")
    assert code == 0 and "events/s" not in out
    code, out = invoke("projections", "status", "--database-url", journal, "--json")
    statuses = {p["name"]: p for p in json.loads(out)["projections"]}
    assert code == 0
    assert set(statuses) == {"run_catalog", "run_index", "run_inspection"}
    assert all(p["lag"] == 0 and p["error"] is None for p in statuses.values())
    code, out = invoke("projections", "rebuild", "nowhere", "--database-url", journal)
    assert code != 0


class Held(Workflow):
    triggers = [manual("go")]

    hold = pause(deadline=Deadline(within=timedelta(hours=4)))
    transitions = [transition(hold, to=COMPLETE)]


@pytest.mark.shared_journal
def test_list_evaluates_deadlines_at_the_time_of_listing(
    database_url: str, open_mesh: OpenMesh
) -> None:
    long_ago = ManualClock(datetime(2001, 1, 1, tzinfo=UTC))
    writer = open_mesh(clock=long_ago)
    writer.start(Held)
    writer.drain(owner_id="w")

    code, out = invoke("list", "--database-url", database_url, "--json")

    assert code == 0, out
    [run] = json.loads(out)["runs"]
    assert run["deadline"]["status"] == "overdue"  # due in 2001, read today


@pytest.mark.shared_journal
def test_list_json_rows_carry_trigger_and_started_updated_ended_times(
    database_url: str, open_mesh: OpenMesh
) -> None:
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    writer = open_mesh(clock=clock)
    held = writer.start(Held).run_id
    clock.advance(timedelta(minutes=1))
    done = writer.start(Audit, {"invoice_id": "inv-1"}).run_id
    clock.advance(timedelta(minutes=1))
    drain(writer, clock)

    code, out = invoke("list", "--database-url", database_url, "--json")

    assert code == 0, out
    rows = {row["run_id"]: row for row in json.loads(out)["runs"]}
    times = ("trigger", "started_at", "updated_at", "ended_at")
    assert {k: rows[held][k] for k in times} == {
        "trigger": "go",
        "started_at": "2026-03-02T09:00:00Z",
        "updated_at": "2026-03-02T09:00:00Z",
        "ended_at": None,
    }
    assert {k: rows[done][k] for k in times} == {
        "trigger": "audit",
        "started_at": "2026-03-02T09:01:00Z",
        "updated_at": "2026-03-02T09:02:00Z",
        "ended_at": "2026-03-02T09:02:00Z",
    }
