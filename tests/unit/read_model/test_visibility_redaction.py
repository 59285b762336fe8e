from __future__ import annotations

import json

import pytest
from read_model_builders import LATER, T0, TOKEN, Harness, transition_spec

from squidmesh_es.domain import REDACTED, ManualKind
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model import (
    RunSnapshot,
    SnapshotReason,
    VisibilityScope,
    build_run_graph,
    explain_run_snapshot,
    redact,
    summarize,
)

SENSITIVE = ("inv-1", "4242", "worker-1", "idem-1", "T-1", "ann-note", TOKEN)


def _busy_snapshot() -> RunSnapshot:
    """A run with input, a result, a claim, a command, a scheduled attempt and a pause."""
    h = Harness(transition_spec())
    key = h.dispatch("load")
    h.claim(key)
    h.complete(key, {"card": "4242"})
    h.apply(key, result={"card": "4242"}, transition={"edge_id": "load:ok:check"})
    h.claim(h.dispatch("check"))
    h.dispatch("notify", at=LATER)
    h.run.receive_command(
        "pause_run", now=T0, idempotency_key="idem-1", comment="ann-note", actor="ann"
    )
    h.run.pause("credit", kind=ManualKind.APPROVAL, now=T0, metadata={"ticket": "T-1"})
    return h.snapshot(T0, include_history=True)


def _text(model: object) -> str:
    return json.dumps(model.model_dump(mode="json"))  # type: ignore[attr-defined]


def test_auditor_sees_everything() -> None:
    snapshot = _busy_snapshot()

    redacted = redact(snapshot, VisibilityScope.AUDITOR)

    assert redacted == snapshot and redacted is not snapshot


@pytest.mark.parametrize("scope", ["external", "operator"])
def test_external_and_operator_lose_payloads_claims_and_commands(scope: str) -> None:
    snapshot = _busy_snapshot()

    redacted = redact(snapshot, scope)

    text = _text(redacted)
    for secret in SENSITIVE:
        assert secret not in text
    assert redacted.input == {} and redacted.context == {}
    assert redacted.command_history == [] and redacted.attempts == []
    assert redacted.claimed_attempts == [] and redacted.anomalies == []


@pytest.mark.parametrize("scope", ["external", "operator"])
def test_status_and_manual_task_shape_survive(scope: str) -> None:
    snapshot = _busy_snapshot()

    redacted = redact(snapshot, scope)

    assert redacted.status is snapshot.status and redacted.run_id == snapshot.run_id
    assert redacted.manual_state is not None
    assert (redacted.manual_state.step, redacted.manual_state.kind) == ("credit", "approval")
    assert redacted.manual_state.metadata == {}
    assert redacted.planned_runnables[0].idempotency_key == REDACTED


def test_operator_keeps_next_visibility_and_anomaly_count_external_does_not() -> None:
    snapshot = _busy_snapshot().model_copy(update={"anomaly_count": 3})

    operator = redact(snapshot, "operator")
    external = redact(snapshot, "external")

    assert operator.next_visible_at == LATER and operator.anomaly_count == 3
    assert external.next_visible_at is None and external.anomaly_count == 0


def test_explanation_evidence_is_cut_to_counts_for_operators_and_dropped_for_external() -> None:
    explanation = explain_run_snapshot(_busy_snapshot(), now=T0)

    operator = redact(explanation, VisibilityScope.OPERATOR)
    external = redact(explanation, VisibilityScope.EXTERNAL)

    assert set(operator.evidence) == {
        "snapshot_reason",
        "attempt_counts",
        "next_visible_at",
        "anomaly_count",
        "terminal_status",
    }
    assert operator.evidence["attempt_counts"] == {"available": 1, "claimed": 1}
    assert operator.details["latest_command"] == {} and operator.details["command_count"] == 1
    assert external.evidence == {} and external.details == {}
    assert external.reason is SnapshotReason.MANUAL_INTERVENTION_REQUIRED
    for secret in SENSITIVE:
        assert secret not in _text(operator)


def test_graph_keeps_topology_and_node_state_but_not_node_payloads() -> None:
    snapshot = _busy_snapshot()
    graph = build_run_graph(snapshot, transition_spec(), include_history=True)

    redacted = redact(graph, "external")

    assert [(n.id, n.status) for n in redacted.nodes] == [(n.id, n.status) for n in graph.nodes]
    assert [(e.id, e.status) for e in redacted.edges] == [(e.id, e.status) for e in graph.edges]
    load = next(n for n in redacted.nodes if n.id == "load")
    assert load.output == {} and load.input == {} and load.attempts == []
    for secret in SENSITIVE:
        assert secret not in _text(redacted)


def test_summary_redaction_drops_anomalies_only() -> None:
    h = Harness()
    summary = summarize(h.snapshot(queue_anomalies=[{"reason": "stale_claim", "run_id": h.run.id}]))

    redacted = redact(summary, "operator")

    assert redacted.anomalies == [] and summary.anomalies != []
    assert redacted.model_copy(update={"anomalies": summary.anomalies}) == summary


def test_source_model_is_left_unchanged() -> None:
    snapshot = _busy_snapshot()
    before = snapshot.model_dump(mode="json")

    redact(snapshot, "external")

    assert snapshot.model_dump(mode="json") == before


def test_a_policy_function_chooses_the_scope() -> None:
    snapshot = _busy_snapshot()
    seen: list[object] = []

    def policy(model: object) -> str:
        seen.append(model)
        return "external"

    assert redact(snapshot, policy) == redact(snapshot, VisibilityScope.EXTERNAL)
    assert seen == [snapshot]


@pytest.mark.parametrize("scope", ["public", "", "AUDITOR"])
def test_unknown_scope_is_refused(scope: str) -> None:
    with pytest.raises(InvalidArgument):
        redact(_busy_snapshot(), scope)
