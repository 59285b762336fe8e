"""``squidmesh inspect``, ``explain`` and ``graph`` against a real SQLite journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main

HERE = Path(__file__).parent


@pytest.fixture
def workflows_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


@pytest.fixture
def journal(tmp_path: Path, workflows_on_path: None) -> str:
    """An existing, empty journal: the read-only commands refuse a missing one."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    SquidMesh.open(url).close()
    return url


@pytest.fixture
def run_id(journal: str) -> str:
    """A CliRouted run whose review step chose the express lane; express is still queued."""
    from cli_workflows import CliRouted

    with SquidMesh.open(journal, workflows=[CliRouted]) as mesh:
        started = mesh.start(CliRouted, {"order_id": "o-1", "amount": 500})
        mesh.execute_next(owner_id="test-worker")
    return started.run_id


def invoke(journal: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--database-url", journal])
    return result.exit_code, result.stdout, result.stderr


# inspect


def test_inspect_shows_status_reason_next_actions_and_steps(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "inspect", run_id)

    assert code == 0, out
    assert f"run:          {run_id}" in out
    assert "status:       running, reason attempt_visible" in out
    assert "next:         wait_for_worker_claim" in out
    assert "attempts:     available 1" in out
    assert "review #1   ok -> express" in out
    assert "express #1  open" in out


@pytest.mark.parametrize(
    ("workflow", "step", "waiting_for"),
    [("CliApproved", "gate", "approve or reject"), ("CliPaused", "hold", "resume")],
)
def test_inspect_shows_the_boundary_a_paused_run_waits_at(
    journal: str, workflow: str, step: str, waiting_for: str
) -> None:
    import cli_workflows

    with SquidMesh.open(journal) as mesh:
        run_id = mesh.start(getattr(cli_workflows, workflow), {"order_id": "o-1"}).run_id
        mesh.drain()

    code, out, _ = invoke(journal, "inspect", run_id)

    assert code == 0, out
    [line] = [line for line in out.splitlines() if line.startswith(f"  {step} #1 ")]
    assert line.split() == [step, "#1", "paused,", "waiting", "for", *waiting_for.split()]
    assert "not dispatched" not in out


def test_inspect_json_is_the_snapshot_document(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "inspect", run_id, "--json")

    assert code == 0, out
    snapshot = json.loads(out)
    assert snapshot["run_id"] == run_id
    assert snapshot["workflow"] == "CliRouted"
    assert snapshot["reason"] == "attempt_visible"
    assert snapshot["applied_runnable_keys"] == [f"{run_id}:review:1"]


def test_inspect_hides_context_values_from_operators(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "inspect", run_id, "--json")

    assert code == 0, out
    snapshot = json.loads(out)
    assert snapshot["input"] == {} and snapshot["context"] == {}
    assert snapshot["attempts"] == []
    assert "keep-me-private" not in out


def test_inspect_shows_context_keys_to_auditors_only(journal: str, run_id: str) -> None:
    _, operator, _ = invoke(journal, "inspect", run_id)
    code, auditor, _ = invoke(journal, "inspect", run_id, "--scope", "auditor")

    assert code == 0, auditor
    assert "context keys: reviewed, secret_note" in auditor
    assert "input keys:   amount, order_id" in auditor
    assert "express #1  available" in auditor
    assert "secret_note" not in operator
    assert "hidden from operator scope" in operator


def test_inspect_auditor_json_keeps_values(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "inspect", run_id, "--json", "--scope", "auditor")

    assert code == 0, out
    snapshot = json.loads(out)
    assert snapshot["context"]["secret_note"] == "keep-me-private"
    assert snapshot["input"] == {"order_id": "o-1", "amount": 500}


def test_inspect_refuses_an_unknown_scope_as_usage_error(journal: str, run_id: str) -> None:
    code, _, err = invoke(journal, "inspect", run_id, "--scope", "everyone")

    assert code == 2
    assert "--scope" in err


# explain


def test_explain_shows_the_diagnosis(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "explain", run_id)

    assert code == 0, out
    assert "reason:       attempt_visible (step express)" in out
    assert "summary:      A dispatch attempt is visible" in out
    assert "next:         wait_for_worker_claim" in out
    assert "details:" in out and "visible_attempt_count: 1" in out
    assert "evidence:" in out


def test_explain_json_is_the_explanation(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "explain", run_id, "--json")

    assert code == 0, out
    explanation = json.loads(out)
    assert explanation["run_id"] == run_id
    assert explanation["reason"] == "attempt_visible"
    assert explanation["next_actions"] == ["wait_for_worker_claim"]


def test_explain_evidence_depends_on_scope(journal: str, run_id: str) -> None:
    scoped = {}
    for scope in ("external", "operator", "auditor"):
        code, out, _ = invoke(journal, "explain", run_id, "--json", "--scope", scope)
        assert code == 0, out
        scoped[scope] = json.loads(out)["evidence"]

    assert scoped["external"] == {}
    assert scoped["operator"]["attempt_counts"] == {"available": 1}
    assert "command_history" not in scoped["operator"]
    assert scoped["auditor"]["command_history"]


# graph


def test_graph_prints_mermaid_with_styled_edges(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "graph", run_id, "--import", "cli_workflows")

    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  review["review<br/><i>completed</i>"]' in lines
    assert '  complete(("complete"))' in lines
    assert '  review ==>|"ok · amount > 100"| express' in lines
    assert '  review -.->|"ok"| standard' in lines
    assert '  express -->|"ok"| complete' in lines
    assert "  linkStyle 0 stroke:#43a047,stroke-width:3px" in lines
    assert "  class review completed" in lines
    assert "  class standard skipped" in lines
    assert "  class express current" in lines


def test_graph_without_the_workflow_code_has_nodes_only_and_a_hint(
    journal: str, run_id: str
) -> None:
    code, out, err = invoke(journal, "graph", run_id)

    assert code == 0, out
    assert "review[" in out
    assert "-->" not in out and "==>" not in out
    assert "--import" in err


def test_graph_json_is_the_ui_map(journal: str, run_id: str) -> None:
    code, out, _ = invoke(journal, "graph", run_id, "--import", "cli_workflows", "--json")

    assert code == 0, out
    graph = json.loads(out)
    assert graph["terminal"] is False
    assert [n["id"] for n in graph["nodes"]] == ["review", "express", "standard"]
    edges = {e["id"]: e for e in graph["edges"]}
    assert edges["review:ok:express:condition:0"]["selected"] is True
    assert edges["review:ok:standard"]["skipped"] is True
    assert edges["review:ok:standard"]["from"] == "review"


def test_graph_history_is_redacted_outside_auditor_scope(journal: str, run_id: str) -> None:
    args = ("graph", run_id, "--import", "cli_workflows", "--json", "--history")
    _, operator, _ = invoke(journal, *args)
    _, auditor, _ = invoke(journal, *args, "--scope", "auditor")

    def review(out: str) -> dict[str, object]:
        return next(n for n in json.loads(out)["nodes"] if n["id"] == "review")

    assert review(auditor)["input"] == {"order_id": "o-1", "amount": 500}
    assert review(operator)["input"] == {}


def test_graph_refuses_a_module_that_cannot_be_imported(journal: str, run_id: str) -> None:
    code, _, err = invoke(journal, "graph", run_id, "--import", "no_such_module_here")

    assert code == 2
    assert "no_such_module_here" in err


# errors


@pytest.mark.parametrize("command", ["inspect", "explain", "graph"])
def test_unknown_run_id_exits_1_with_one_line(journal: str, command: str) -> None:
    missing = str(uuid4())

    code, out, err = invoke(journal, command, missing)

    assert code == 1
    assert out == ""
    assert err == f"Error: not_found: run {missing} not found\n"


@pytest.mark.parametrize("command", ["inspect", "explain", "graph"])
def test_unknown_run_id_with_json_prints_the_error(journal: str, command: str) -> None:
    missing = str(uuid4())

    code, out, _ = invoke(journal, command, missing, "--json")

    assert code == 1
    error = json.loads(out)["error"]
    assert error["code"] == "not_found"
    assert error["details"] == {"run_id": missing}


@pytest.mark.parametrize("command", ["inspect", "explain", "graph"])
def test_invalid_run_id_exits_1_with_a_message(journal: str, command: str) -> None:
    code, out, err = invoke(journal, command, "not-a-uuid")

    assert code == 1
    assert err == "Error: invalid_run_id: run id is not a UUID\n"
    assert "Traceback" not in out + err


def test_invalid_run_id_with_json_prints_its_code(journal: str) -> None:
    code, out, _ = invoke(journal, "explain", "not-a-uuid", "--json")

    assert code == 1
    assert json.loads(out)["error"]["code"] == "invalid_run_id"


# a real process


def test_python_m_inspect_reads_the_journal_from_the_environment(journal: str, run_id: str) -> None:
    env = {**os.environ, "SQUIDMESH_DATABASE_URL": journal}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "squidmesh_es.cli",
            "inspect",
            run_id,
            "--json",
            "--import",
            "cli_workflows",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_id"] == run_id
    missing = subprocess.run(
        [sys.executable, "-m", "squidmesh_es.cli", "inspect", str(uuid4())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: not_found: run ")
    assert "Traceback" not in missing.stderr


# rollbacks and runtime specs


@pytest.fixture
def saga_run_id(journal: str) -> str:
    """A CliSaga run whose charge failed and whose hold was released."""
    from cli_workflows import CliSaga

    with SquidMesh.open(journal, workflows=[CliSaga]) as mesh:
        started = mesh.start(CliSaga, {"order_id": "o-2"})
        mesh.drain()
    return started.run_id


@pytest.fixture
def spec_run_id(journal: str) -> str:
    """A run of a runtime-authored spec, its review step done."""
    from cli_workflows import CLI_SPEC, cli_actions

    with SquidMesh.open(journal, action_registry=cli_actions()) as mesh:
        started = mesh.start_spec(CLI_SPEC, {})
        mesh.execute_next(owner_id="test-worker")
    return started.run_id


def test_graph_draws_a_callback_and_the_step_it_undoes(journal: str, saga_run_id: str) -> None:
    code, out, _ = invoke(journal, "graph", saga_run_id, "--import", "cli_workflows")

    assert code == 0, out
    lines = out.splitlines()
    callback = next(line for line in lines if "compensate:hold" in line)
    assert callback.endswith('[\\"compensate:hold<br/><i>completed</i>"\\]')
    callback_id = callback.strip().split("[", 1)[0]
    assert f'  hold ==>|"undo"| {callback_id}' in lines


def test_explain_says_a_rollback_ran(journal: str, saga_run_id: str) -> None:
    code, out, _ = invoke(journal, "explain", saga_run_id, "--import", "cli_workflows")

    assert code == 0, out
    assert "A rollback ran after charge failed (compensated: hold; failed callbacks: none)." in out
    assert '"compensatable": ["hold"]' in out
    assert "card declined" not in out


def test_graph_of_a_runtime_spec_run_needs_no_import(journal: str, spec_run_id: str) -> None:
    code, out, err = invoke(journal, "graph", spec_run_id)

    assert code == 0, out
    assert '  review ==>|"ok"| express' in out.splitlines()
    assert "not registered" not in out + err


def test_inspect_says_the_definition_is_the_stored_runtime_spec(
    journal: str, spec_run_id: str
) -> None:
    code, out, _ = invoke(journal, "inspect", spec_run_id)

    assert code == 0, out
    assert "runtime spec stored with the run" in out
    assert "matches code" not in out


def test_the_installed_command_imports_modules_from_its_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "local_flows.py").write_text(
        textwrap.dedent(
            """
            from squidmesh_es import Ok, Step, Workflow
            from squidmesh_es.workflow import COMPLETE, manual, step, transition


            class Hello(Step):
                def run(self, input, ctx):
                    return Ok({"hello": True})


            class LocalFlow(Workflow):
                triggers = [manual("go")]
                hello = step(Hello)
                transitions = [transition(hello, to=COMPLETE)]
            """
        )
    )
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    start = "import local_flows; from squidmesh_es import SquidMesh\n"
    start += f"print(SquidMesh.open({url!r}).start(local_flows.LocalFlow).run_id)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run_id = subprocess.run(
        [sys.executable, "-c", start],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    squidmesh = Path(sys.executable).with_name("squidmesh")

    graph = subprocess.run(
        [str(squidmesh), "graph", run_id, "--import", "local_flows", "--database-url", url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert graph.returncode == 0, graph.stderr
    assert "hello" in graph.stdout


def test_inspect_leads_the_deadline_line_with_its_status() -> None:
    from datetime import UTC, datetime

    from squidmesh_es.cli._inspect import _deadline
    from squidmesh_es.read_model import DeadlineStatus, DeadlineView

    view = DeadlineView(
        step="review",
        runnable_key=None,
        scheduled_at=None,
        due_at=datetime(2026, 3, 2, 13, tzinfo=UTC),
        due_soon_at=None,
        escalation="operator_action",
        status=DeadlineStatus.ESCALATED,
    )

    assert _deadline(view) == (
        "escalated (review): due 2026-03-02T13:00:00+00:00, escalation operator_action"
    )
