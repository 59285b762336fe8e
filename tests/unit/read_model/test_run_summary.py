from __future__ import annotations

import json
from datetime import timedelta

import pytest
from read_model_builders import LATER, RUN_ID, T0, TOKEN, Harness, saga_spec, snapshot_for

from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model import (
    DeadlineStatus,
    RunSummary,
    SnapshotReason,
    SnapshotStatus,
    summarize,
)


def test_summary_of_a_snapshot_keeps_identity_and_status() -> None:
    snapshot = snapshot_for(SnapshotReason.TERMINAL)

    summary = summarize(snapshot)

    assert summary.run_id == str(RUN_ID) and summary.workflow == "billing"
    assert summary.queue == "default" and summary.definition_version == "v1"
    assert summary.status is SnapshotStatus.FAILED
    assert summary.terminal and summary.terminal_status == "failed"
    assert summary.indexed_at == T0 and summary.thread_revision == snapshot.thread_revisions.run


def test_summary_never_carries_inputs_results_errors_claims_or_keys() -> None:
    h = Harness()
    key = h.dispatch("load", deadline={"due_at": LATER})
    h.claim(key)
    h.complete(key, {"card": "4242"})
    h.run.receive_command("cancel_run", now=T0, idempotency_key="idem-1")

    text = json.dumps(summarize(h.snapshot(include_history=True)).model_dump(mode="json"))

    for secret in ("inv-1", "4242", "worker-1", "c1", "idem-1", TOKEN, key):
        assert secret not in text


def test_summary_anomalies_keep_only_index_safe_fields() -> None:
    h = Harness()
    anomaly = {"reason": "stale_claim", "run_id": str(RUN_ID), "claim_id": "c9", "at": T0}

    summary = summarize(h.snapshot(queue_anomalies=[anomaly]))

    assert summary.anomalies == [
        {"reason": "stale_claim", "at": T0.isoformat(), "source": "dispatch"}
    ]


def test_summarizing_a_bare_run_needs_now() -> None:
    h = Harness()
    h.plan("load")

    with pytest.raises(InvalidArgument):
        summarize(h.run)
    assert summarize(h.run, now=T0).status is SnapshotStatus.RUNNING


def test_deadline_is_re_evaluated_at_now() -> None:
    h = Harness()
    h.dispatch("load", deadline={"due_at": LATER})
    snapshot = h.snapshot(T0)

    assert summarize(snapshot).deadline.status is DeadlineStatus.ON_TIME  # type: ignore[union-attr]
    later = summarize(snapshot, now=LATER + timedelta(seconds=1))
    assert later.deadline is not None and later.deadline.status is DeadlineStatus.OVERDUE


def test_projection_rows_build_a_summary_directly() -> None:
    summary = RunSummary(
        run_id="r1",
        workflow="billing",
        queue="default",
        status="running",
        terminal=False,
        terminal_status=None,
        definition_version=None,
        indexed_at=T0,
        started_at=T0,
        updated_at=T0,
        deadline={
            "step": "load",
            "runnable_key": None,
            "scheduled_at": None,
            "due_at": T0.isoformat(),
            "due_soon_at": None,
            "escalation": None,
            "status": "on_time",
        },
    )

    assert summary.status is SnapshotStatus.RUNNING
    assert summary.deadline is not None and summary.deadline.due_at == T0
    assert summary.anomalies == [] and summary.thread_revision == 0


def test_indexed_at_can_be_given() -> None:
    assert summarize(Harness().snapshot(), indexed_at=LATER).indexed_at == LATER


def test_summary_of_a_rollback_carries_neither_its_failure_nor_callback_inputs() -> None:
    h = Harness(saga_spec())
    h.rolling_back()
    snapshot = h.snapshot(include_history=True)

    summary = summarize(snapshot)

    assert snapshot.compensation is not None and summary.status is SnapshotStatus.RUNNING
    assert set(RunSummary.model_fields) == {
        "run_id",
        "workflow",
        "queue",
        "status",
        "terminal",
        "terminal_status",
        "definition_version",
        "indexed_at",
        "started_at",
        "updated_at",
        "ended_at",
        "trigger",
        "deadline",
        "anomalies",
        "thread_revision",
    }
    text = json.dumps(summary.model_dump(mode="json"))
    for secret in ("4242", "declined", "inv-1", "step_failed"):
        assert secret not in text
