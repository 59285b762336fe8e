"""``squidmesh worker`` with an action registry: it runs start_spec runs and dynamic nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.cli._options import load_worker_code

ACTIONS_MODULE = textwrap.dedent(
    """
    from squidmesh_es import Ok, Step
    from squidmesh_es.workflow import ActionRegistry


    class Greet(Step):
        def run(self, input, ctx):
            return Ok({"greeted": input["name"]})


    ACTIONS = ActionRegistry({"demo.greet": Greet})
    """
)

SPEC = {
    "workflow": "greeting",
    "triggers": [{"name": "go", "type": "manual"}],
    "payload": [{"name": "name", "type": "string", "required": True, "nullable": False}],
    "steps": [{"name": "greet", "kind": "custom", "action": "demo.greet"}],
    "transitions": [{"from": "greet", "on": "ok", "to": "complete"}],
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host project directory holding an actions module, importable from it."""
    (tmp_path / "demo_actions.py").write_text(ACTIONS_MODULE)
    (tmp_path / "more_actions.py").write_text(ACTIONS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_the_worker_command_runs_a_start_spec_run_with_the_imported_registry(
    project: Path,
) -> None:
    import demo_actions  # type: ignore[import-not-found]

    url = f"sqlite:///{project / 'journal.db'}"
    with SquidMesh.open(url) as mesh:
        run_id = mesh.start_spec(SPEC, {"name": "Ada"}, action_registry=demo_actions.ACTIONS).run_id
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    squidmesh = Path(sys.executable).with_name("squidmesh")
    worker = subprocess.Popen(
        [str(squidmesh), "worker", "--import", "demo_actions", "--database-url", url],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with SquidMesh.open(url) as mesh:
            deadline = time.monotonic() + 30
            while not mesh.get_run(run_id).is_terminal and time.monotonic() < deadline:
                time.sleep(0.1)
            snapshot = mesh.inspect_run(run_id)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)

    assert snapshot.terminal_status == "completed", stderr
    assert snapshot.context == {"greeted": "Ada"}
    assert worker.returncode == 0, stderr
    assert "1 actions" in stderr


def test_several_registries_need_a_choice(project: Path) -> None:
    with pytest.raises(click.BadParameter, match="several action registries"):
        load_worker_code(["demo_actions", "more_actions"], None)

    workflows, registry = load_worker_code(["demo_actions", "more_actions"], "more_actions:ACTIONS")

    import more_actions  # type: ignore[import-not-found]

    assert workflows == [] and registry is more_actions.ACTIONS


def test_one_registry_imported_by_another_module_is_not_a_second_one(project: Path) -> None:
    (project / "demo_flows.py").write_text("from demo_actions import ACTIONS\n")

    workflows, registry = load_worker_code(["demo_flows", "demo_actions"], None)

    import demo_actions  # type: ignore[import-not-found]

    assert workflows == [] and registry is demo_actions.ACTIONS


@pytest.mark.parametrize(
    ("actions", "message"),
    [("demo_actions", "expected MODULE:NAME"), ("demo_actions:Greet", "not an ActionRegistry")],
)
def test_a_bad_actions_reference_is_a_usage_error(
    project: Path, actions: str, message: str
) -> None:
    with pytest.raises(click.BadParameter, match=message):
        load_worker_code(["demo_actions"], actions)


def test_modules_without_workflows_or_actions_are_a_usage_error(project: Path) -> None:
    (project / "empty_module.py").write_text("VALUE = 1\n")

    with pytest.raises(click.BadParameter, match="no Workflow classes and no ActionRegistry"):
        load_worker_code(["empty_module"], None)
