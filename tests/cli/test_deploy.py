"""``squidmesh deploy check`` and ``squidmesh runs migrate`` against a real SQLite journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

HERE = Path(__file__).parent


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(HERE))
    return f"sqlite:///{tmp_path / 'deploy.db'}"


@pytest.fixture
def run_id(journal: str) -> str:
    """A ``cli_order`` run that reserved and now waits on its charge step."""
    from deploy_v1 import CliOrder

    with SquidMesh.open(journal, workflows=[CliOrder]) as mesh:
        started = mesh.start(CliOrder, {"order_id": "o-1"})
        mesh.execute_next(owner_id="w")
    return started.run_id


def invoke(journal: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--database-url", journal])
    return result.exit_code, result.stdout


def test_deploy_check_lists_a_run_the_new_code_cannot_serve_and_exits_1(
    journal: str, run_id: str
) -> None:
    code, out = invoke(journal, "deploy", "check", "--import", "deploy_v2")

    assert code == 1
    assert run_id in out
    assert "charge (charge)" in out


def test_deploy_check_as_json_names_the_missing_and_waiting_steps(
    journal: str, run_id: str
) -> None:
    code, out = invoke(journal, "deploy", "check", "--import", "deploy_v2", "--json")

    assert code == 1
    (problem,) = json.loads(out)["problems"]
    assert problem["run_id"] == run_id
    assert (problem["missing_steps"], problem["waiting_steps"]) == (["charge"], ["charge"])


def test_deploy_check_passes_when_the_code_serves_every_run(journal: str, run_id: str) -> None:
    code, out = invoke(journal, "deploy", "check", "--import", "deploy_v3")

    assert code == 0, out
    assert out.startswith("ok:")


def test_explain_with_the_new_code_says_which_step_is_missing(journal: str, run_id: str) -> None:
    code, out = invoke(journal, "explain", run_id, "--import", "deploy_v2")

    assert code == 0, out
    assert "charge of workflow cli_order is missing from this deploy" in out


def test_runs_migrate_dry_run_writes_nothing_then_migrates(journal: str, run_id: str) -> None:
    args = ("runs", "migrate", "--workflow", "cli_order", "--import", "deploy_v3")
    with SquidMesh.open(journal) as mesh:
        version = mesh.get_run(run_id).version

    code, out = invoke(journal, *args, "--dry-run")
    assert (code, f"{run_id}  would_migrate" in out) == (0, True)
    with SquidMesh.open(journal) as mesh:
        assert mesh.get_run(run_id).version == version

    code, out = invoke(journal, *args, "--actor", "ops", "--reason", "notify after charge")
    assert (code, f"{run_id}  migrated" in out) == (0, True)
    from deploy_v3 import CliOrder

    with SquidMesh.open(journal, workflows=[CliOrder]) as mesh:
        assert mesh.get_run(run_id).definition_fingerprint == CliOrder.to_spec().fingerprint
        mesh.drain(owner_id="w")
        assert mesh.get_run(run_id).terminal_status == "completed"


def test_runs_migrate_refuses_an_unsafe_move_with_its_steps_and_exits_1(
    journal: str, run_id: str
) -> None:
    code, out = invoke(
        journal, "runs", "migrate", "--workflow", "cli_order", "--import", "deploy_v2", "--json"
    )

    assert code == 1
    (row,) = json.loads(out)["runs"]
    assert row["status"] == "refused"
    assert {"step": "charge", "reason": "missing_from_target"} in row["conflicts"]
