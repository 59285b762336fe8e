"""``squidmesh approve | reject | resume | cancel | forget | replay | recover``, SQLite/Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from squidmesh_es import SquidMesh
from squidmesh_es.cli import main
from squidmesh_es.domain import TerminalStatus, WorkflowRun
from squidmesh_es.domain._planner import plan_entry

HERE = Path(__file__).parent
WORKFLOWS = "control_workflows"

pytestmark = pytest.mark.shared_journal


@pytest.fixture
def journal(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SquidMesh]:
    """The test's journal, opened with the control workflows registered (system clock)."""
    monkeypatch.syspath_prepend(str(HERE))
    from control_workflows import CtlErasableRestock, CtlRefund, CtlRestock

    workflows = [CtlRefund, CtlRestock, CtlErasableRestock]
    with SquidMesh.open(database_url, workflows=workflows) as mesh:
        yield mesh


def waiting_refund(mesh: SquidMesh, order_id: str = "A-1") -> str:
    """A CtlRefund run paused at its approval step."""
    from control_workflows import CtlRefund

    run_id = mesh.start(CtlRefund, {"order_id": order_id, "amount": 30}).run_id
    mesh.drain()
    return run_id


def held_restock(mesh: SquidMesh) -> str:
    """A CtlRestock run paused at its pause step."""
    from control_workflows import CtlRestock

    run_id = mesh.start(CtlRestock, {"order_id": "B-2"}).run_id
    mesh.drain()
    return run_id


def invoke(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--database-url", url])
    return result.exit_code, result.stdout, result.stderr


def head(mesh: SquidMesh) -> int:
    """The journal's last notification id: unchanged means nothing was written."""
    return mesh.recorder.max_notification_id() or 0


# approve, reject, resume


def test_approve_prints_the_run_its_status_and_the_receipt(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)

    code, out, err = invoke(
        database_url,
        *("approve", run_id, "--import", WORKFLOWS),
        *("--actor", "ana@example.com", "--comment", "receipt checked"),
        *("--metadata", "ticket=T-9", "--metadata", "api_token=tok-1"),
        *("--idempotency-key", "T-9:approve"),
    )

    assert code == 0, err
    assert out == f"run {run_id}: running after approve_run by ana@example.com\n"
    snapshot = journal.inspect_run(run_id, include_history=True)
    receipt = snapshot.command_history[-1]
    assert receipt.signal_type == "approve_run" and receipt.idempotency_key == "T-9:approve"
    assert receipt.comment == "receipt checked"
    assert receipt.metadata == {"ticket": "T-9", "api_token": "[REDACTED]"}
    assert snapshot.context["review"]["decision"] == "approved"
    assert [a.step for a in snapshot.visible_attempts] == ["pay"]


def test_approve_again_with_the_same_key_prints_the_same_and_writes_nothing(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    args = ("approve", run_id, "--import", WORKFLOWS, "--actor", "ana", "--idempotency-key", "k1")
    first = invoke(database_url, *args)
    written = head(journal)

    again = invoke(database_url, *args)
    again_json = invoke(database_url, *args, "--json")

    assert first == again and first[0] == 0
    assert again_json[0] == 0 and json.loads(again_json[1])["run_id"] == run_id
    assert head(journal) == written
    history = journal.inspect_run(run_id).command_history
    assert [c.signal_type for c in history] == ["start_run", "approve_run"]


def test_approve_json_is_the_snapshot_redacted_to_the_scope(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)

    code, out, _ = invoke(database_url, "approve", run_id, "--import", WORKFLOWS, "--json")
    code_auditor, auditor, _ = invoke(
        database_url, "inspect", run_id, "--json", "--scope", "auditor"
    )

    assert code == 0 and code_auditor == 0
    snapshot = json.loads(out)
    assert (snapshot["run_id"], snapshot["status"]) == (run_id, "running")
    assert snapshot["manual_state"] is None
    assert snapshot["context"] == {}  # operator scope: no context values
    assert json.loads(auditor)["context"]["review"]["decision"] == "approved"


def test_reject_takes_the_error_route(journal: SquidMesh, database_url: str) -> None:
    run_id = waiting_refund(journal)

    code, out, err = invoke(database_url, "reject", run_id, "--import", WORKFLOWS, "--actor", "bo")

    assert code == 0, err
    assert out == f"run {run_id}: running after reject_run by bo\n"  # a worker logs `declined`
    [review] = [a for a in journal.inspect_run(run_id).applied_runnables if a.step == "review"]
    assert review.outcome == "error"
    assert review.transition is not None and review.transition["to"] == "declined"


def test_resume_continues_a_paused_run(journal: SquidMesh, database_url: str) -> None:
    run_id = held_restock(journal)

    code, out, err = invoke(
        database_url, "resume", run_id, "--import", WORKFLOWS, "--actor", "warehouse"
    )

    assert code == 0, err
    assert out == f"run {run_id}: completed after resume_run by warehouse\n"
    assert journal.inspect_run(run_id).terminal_status == "completed"


def test_a_control_without_an_actor_names_only_the_receipt(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = held_restock(journal)

    code, out, _ = invoke(database_url, "resume", run_id, "--import", WORKFLOWS)

    assert code == 0
    assert out == f"run {run_id}: completed after resume_run\n"


# refusals: exit 1, the code on stderr, nothing written


def test_approving_a_pause_is_refused_as_manual_step_mismatch(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = held_restock(journal)
    before = head(journal)

    code, out, err = invoke(database_url, "approve", run_id, "--import", WORKFLOWS)

    assert code == 1 and out == ""
    assert err.startswith(f"Error: manual_step_mismatch: run {run_id} ")
    assert head(journal) == before


def test_a_refusal_with_json_prints_the_error_document(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = held_restock(journal)

    code, out, _ = invoke(database_url, "approve", run_id, "--import", WORKFLOWS, "--json")

    assert code == 1
    error = json.loads(out)["error"]
    assert error["code"] == "manual_step_mismatch"
    assert error["details"] == {"run_id": run_id, "expected": "approval", "actual": "pause"}


def test_a_second_approval_with_another_key_finds_no_boundary(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    invoke(database_url, "approve", run_id, "--import", WORKFLOWS, "--idempotency-key", "k1")
    before = head(journal)

    code, _, err = invoke(
        database_url, "approve", run_id, "--import", WORKFLOWS, "--idempotency-key", "k2"
    )

    assert code == 1 and err.startswith("Error: manual_step_mismatch:")
    assert head(journal) == before


def test_a_control_on_an_ended_run_is_refused_as_terminal(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = held_restock(journal)
    invoke(database_url, "cancel", run_id, "--reason", "duplicate")
    before = head(journal)

    cancel = invoke(database_url, "cancel", run_id, "--reason", "again")
    resume = invoke(database_url, "resume", run_id, "--import", WORKFLOWS)

    for code, out, err in (cancel, resume):
        assert code == 1 and out == ""
        assert err.startswith(f"Error: terminal_run: run {run_id} is terminal (cancelled)")
    assert head(journal) == before


@pytest.mark.parametrize("command", ["approve", "reject", "resume", "cancel", "replay"])
def test_an_unknown_run_is_refused_as_not_found(
    journal: SquidMesh, database_url: str, command: str
) -> None:
    missing = str(uuid4())
    before = head(journal)

    imports = () if command == "cancel" else ("--import", WORKFLOWS)  # cancel plans nothing

    code, out, err = invoke(database_url, command, missing, *imports)

    assert code == 1 and out == ""
    assert err == f"Error: not_found: run {missing} not found\n"
    assert head(journal) == before


@pytest.mark.parametrize("command", ["approve", "reject", "resume", "cancel", "replay"])
def test_a_run_id_that_is_not_a_uuid_is_refused(
    journal: SquidMesh, database_url: str, command: str
) -> None:
    code, out, err = invoke(database_url, command, "refund-A-1")

    assert code == 1 and out == ""
    assert err.startswith("Error: invalid_run_id: ")


def test_approving_without_the_workflows_code_is_refused_with_a_hint(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    before = head(journal)

    code, _, err = invoke(database_url, "approve", run_id)

    assert code == 1
    assert err.splitlines() == [
        "Error: invalid_option: invalid workflow: 'CtlRefund' is not registered",
        "hint: pass --import with the module that defines the run's workflow",
    ]
    assert head(journal) == before


# cancel


def test_cancel_needs_no_import_and_records_the_reason(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    args = ("cancel", run_id, "--reason", "duplicate of C-3", "--actor", "ops")

    code, out, err = invoke(database_url, *args, "--idempotency-key", "cancel-1")
    again = invoke(database_url, *args, "--idempotency-key", "cancel-1")

    assert code == 0, err
    assert out == f"run {run_id}: cancelled after cancel_run by ops\n"
    assert again == (code, out, err)
    snapshot = journal.inspect_run(run_id, include_history=True)
    assert snapshot.error == {"code": "cancelled", "reason": "duplicate of C-3"}
    assert [c.signal_type for c in snapshot.command_history].count("cancel_run") == 1


# forget


def test_forget_cancels_a_paused_run_and_erases_its_data(
    journal: SquidMesh, database_url: str
) -> None:
    from control_workflows import CtlErasableRestock

    run_id = str(journal.start(CtlErasableRestock, {"order_id": "B-7"}).run_id)
    journal.drain()

    code, out, err = invoke(database_url, "forget", run_id, "--actor", "dpo")
    again = invoke(database_url, "forget", run_id, "--actor", "dpo")

    assert code == 0, err
    assert out == f"run {run_id}: cancelled after cancel_run by dpo; data forgotten\n"
    assert again == (code, out, err)
    assert set(journal.inspect_run(run_id).input.values()) == {"[ERASED]"}


def test_forget_refuses_a_run_stored_in_clear_with_one_line(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = held_restock(journal)
    before = head(journal)

    code, out, err = invoke(database_url, "forget", run_id)

    assert code == 1 and out == ""
    assert err.startswith("Error: run_not_erasable: ") and err.count("\n") == 1
    assert head(journal) == before


# replay


def test_replay_over_an_irreversible_step_is_refused_with_its_blocking_steps(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    journal.approve(run_id)
    journal.drain()  # pay, irreversible, completes
    before = head(journal)

    code, out, err = invoke(database_url, "replay", run_id, "--import", WORKFLOWS)
    code_json, out_json, _ = invoke(database_url, "replay", run_id, "--import", WORKFLOWS, "--json")

    assert code == 1 and out == ""
    assert err == f"Error: unsafe_replay: replay of run {run_id} is blocked by steps pay\n"
    assert code_json == 1
    assert json.loads(out_json)["error"]["details"]["blocking_steps"] == ["pay"]
    assert head(journal) == before


def test_replay_prints_the_new_run_and_a_repeat_prints_it_again(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    journal.approve(run_id)
    journal.drain()
    args = ("replay", run_id, "--import", WORKFLOWS, "--allow-irreversible", "--actor", "lee")

    code, out, err = invoke(database_url, *args, "--comment", "payout lost downstream")
    again = invoke(database_url, *args)

    assert code == 0, err
    new_run_id = out.split()[1].rstrip(":")
    assert new_run_id != run_id
    assert out == f"run {new_run_id}: running after replay_run by lee (replay of {run_id})\n"
    assert again == (code, out, err)
    receipt = journal.inspect_run(new_run_id, include_history=True).command_history[0]
    assert receipt.signal_type == "replay_run" and receipt.comment == "payout lost downstream"
    assert receipt.payload is not None and receipt.payload["blocking_steps"] == ["pay"]


def test_replay_with_another_key_starts_another_run(journal: SquidMesh, database_url: str) -> None:
    run_id = waiting_refund(journal)
    journal.reject(run_id)  # nothing irreversible completed: nothing blocks

    _, first, _ = invoke(database_url, "replay", run_id, "--import", WORKFLOWS, "--json")
    _, second, _ = invoke(
        database_url,
        "replay",
        run_id,
        "--import",
        WORKFLOWS,
        "--idempotency-key",
        "again",
        "--json",
    )

    ids = {json.loads(first)["run_id"], json.loads(second)["run_id"]}
    assert len(ids) == 2
    assert {json.loads(d)["replayed_from_run_id"] for d in (first, second)} == {run_id}


def test_replay_without_the_workflows_code_is_refused_with_a_hint(
    journal: SquidMesh, database_url: str
) -> None:
    run_id = waiting_refund(journal)
    journal.reject(run_id)
    before = head(journal)

    code, _, err = invoke(database_url, "replay", run_id)

    assert code == 1
    assert err.splitlines()[0].startswith("Error: invalid_replay_source:")
    assert err.splitlines()[1].startswith("hint: pass --import")
    assert head(journal) == before


# recover


REPORT_COUNTS = ("examined_runs", "events_read", "seconds")
"""What a recovery report says about its own cost, besides what it repaired."""


def planned_but_unscheduled(mesh: SquidMesh) -> str:
    """A run whose start committed its plan but crashed before scheduling the attempt."""
    from control_workflows import CtlRefund

    spec = CtlRefund.to_spec()
    now = mesh.now()
    run = WorkflowRun.start(
        run_id=uuid4(),
        workflow=CtlRefund.name,
        trigger="refund",
        input={"order_id": "F-6", "amount": 1},
        queue="default",
        definition_fingerprint=spec.fingerprint,
        now=now,
    )
    plan_entry(spec, run, now=now)
    queue = mesh.get_queue()
    queue.enqueue_run(run.run_id, now=now)
    mesh.save(run, queue)
    return str(run.run_id)


def test_recover_with_nothing_to_repair_says_so(journal: SquidMesh, database_url: str) -> None:
    code, out, err = invoke(database_url, "recover", "--import", WORKFLOWS)

    assert code == 0, err
    assert out == "recover queue default: scheduled 0, applied 0, closed 0, skipped 0\n"


def test_recover_schedules_planned_work_and_closes_ended_runs(
    journal: SquidMesh, database_url: str
) -> None:
    planned = planned_but_unscheduled(journal)
    ended = waiting_refund(journal)
    run = journal.get_run(ended)
    run.end(TerminalStatus.CANCELLED, now=journal.now())
    journal.save(run)  # the run's half of a cancel, without the queue's

    code, out, err = invoke(database_url, "recover", "--import", WORKFLOWS)
    again = invoke(database_url, "recover", "--import", WORKFLOWS, "--json")

    assert code == 0, err
    assert out.splitlines() == [
        "recover queue default: scheduled 1, applied 0, closed 1, skipped 0",
        f"  scheduled  {planned}:check:1",
        f"  closed     {ended}",
    ]
    assert again[0] == 0
    document = json.loads(again[1])
    assert {k: document[k] for k in document if k not in REPORT_COUNTS} == {
        "scheduled": [],
        "applied": [],
        "closed_runs": [],
        "skipped_runs": [],
        "repaired": False,
    }
    assert set(document) >= set(REPORT_COUNTS)
    assert [a.step for a in journal.inspect_run(planned).visible_attempts] == ["check"]


def test_recover_without_the_code_skips_the_runs_it_cannot_judge(
    journal: SquidMesh, database_url: str
) -> None:
    planned = planned_but_unscheduled(journal)
    before = head(journal)

    code, out, err = invoke(database_url, "recover", "--json")

    assert code == 0
    assert json.loads(out)["skipped_runs"] == [planned]
    assert json.loads(out)["repaired"] is False
    assert err == ""  # --json keeps stdout a document; the note is for the human view
    assert head(journal) == before


def test_recover_one_run(journal: SquidMesh, database_url: str) -> None:
    planned = planned_but_unscheduled(journal)
    other = planned_but_unscheduled(journal)

    code, out, err = invoke(database_url, "recover", "--import", WORKFLOWS, "--run", planned)

    assert code == 0, err
    assert out.splitlines() == [
        f"recover run {planned}: scheduled 1, applied 0, closed 0, skipped 0",
        f"  scheduled  {planned}:check:1",
    ]
    assert journal.inspect_run(other).visible_attempts == []


def test_recover_refuses_a_run_that_does_not_exist(journal: SquidMesh, database_url: str) -> None:
    missing = str(uuid4())

    code, _, err = invoke(database_url, "recover", "--run", missing)
    bad = invoke(database_url, "recover", "--run", "nope")

    assert code == 1 and err == f"Error: not_found: run {missing} not found\n"
    assert bad[0] == 1 and bad[2].startswith("Error: invalid_run_id:")


# usage errors: exit 2, before the journal is opened


@pytest.mark.parametrize(
    "args",
    [
        ("approve",),
        ("approve", "x", "--metadata", "no-equals-sign"),
        ("approve", "x", "--metadata", "=value"),
        ("approve", "x", "--metadata", "a=1", "--metadata", "a=2"),
        ("approve", "x", "--import", "json"),
        ("cancel", "x", "--comment", "cancel takes --reason"),
        ("replay", "x", "--allow-irreversible=yes"),
        ("recover", "--run"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'untouched.db'}"

    result = CliRunner().invoke(main, [*args, "--database-url", url])

    assert result.exit_code == 2, result.output
    assert not (tmp_path / "untouched.db").exists()


def test_the_installed_command_exits_1_on_a_refusal(
    journal: SquidMesh, database_url: str, tmp_path: Path
) -> None:
    run_id = held_restock(journal)
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "SQUIDMESH_DATABASE_URL": database_url}

    def squidmesh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "squidmesh_es.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    refused = squidmesh("approve", run_id, "--import", WORKFLOWS)
    resumed = squidmesh("resume", run_id, "--import", WORKFLOWS, "--actor", "ops")

    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: manual_step_mismatch:")
    assert "Traceback" not in refused.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"run {run_id}: completed after resume_run by ops\n"
