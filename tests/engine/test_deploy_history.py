"""A journal written before graphs were stored loads and runs on, from a stored SQLite file.

``tests/fixtures/deploy_history_0_1.sqlite`` was written by commit c645770 with
`deploy_history_workflows.Release1`: one run paused at its approval, one approved and waiting
on its charge step. Neither has a stored definition.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_history_workflows import CHARGING, PAUSED, Charge, Order, Release1, Reserve

from squidmesh_es import SquidMesh
from squidmesh_es.workflow import (
    COMPLETE,
    Outcome,
    RetryPolicy,
    Workflow,
    approval,
    log,
    manual,
    step,
    transition,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "deploy_history_0_1.sqlite"


class Release2(Workflow):
    """The charge step now retries."""

    name = "history_order"
    payload = Order
    triggers = [manual("place")]

    reserve = step(Reserve)
    review = approval()
    rejected = log("rejected")
    charge = step(Charge, retry=RetryPolicy(max_attempts=3))
    transitions = [
        transition(reserve, to=review),
        transition(review, on=Outcome.ERROR, to=rejected),
        transition(rejected, to=COMPLETE),
        transition(review, to=charge),
        transition(charge, to=COMPLETE),
    ]


@pytest.fixture
def journal(tmp_path: Path) -> str:
    copy = tmp_path / "history.sqlite"
    shutil.copyfile(FIXTURE, copy)
    return f"sqlite:///{copy}"


def test_the_stored_runs_finish_under_the_unchanged_workflow(journal: str) -> None:
    with SquidMesh.open(journal, workflows=[Release1]) as mesh:
        assert mesh.check_deploy() == []
        mesh.approve(PAUSED, actor="ana")
        mesh.drain(owner_id="release-1b")

        assert mesh.get_run(PAUSED).terminal_status == "completed"
        assert mesh.get_run(CHARGING).terminal_status == "completed"


def test_the_stored_runs_are_reported_and_refused_under_a_changed_workflow(journal: str) -> None:
    with SquidMesh.open(journal, workflows=[Release2]) as mesh:
        reasons = {p.run_id: p.reason for p in mesh.check_deploy()}
        mesh.drain(owner_id="release-2")

        assert reasons == {
            PAUSED: "incompatible_workflow_definition",
            CHARGING: "incompatible_workflow_definition",
        }
        error = mesh.get_run(CHARGING).error
        assert error is not None and error["code"] == "incompatible_workflow_definition"


def test_a_stored_run_is_rescued_by_migrating_it_onto_the_changed_workflow(journal: str) -> None:
    with SquidMesh.open(journal, workflows=[Release2]) as mesh:
        migration = mesh.migrate_run(CHARGING, actor="ana", reason="charge retries now")
        mesh.drain(owner_id="release-2")

        assert migration.status == "migrated"
        assert mesh.get_run(CHARGING).terminal_status == "completed"
        assert mesh.check_deploy()[0].run_id == PAUSED  # not migrated: still refused
