from __future__ import annotations

import json

import pytest
from read_model_builders import LATER, T0, TOKEN, Harness, saga_spec, transition_spec

from squidmesh_es.domain import ManualKind
from squidmesh_es.errors import InvalidArgument
from squidmesh_es.read_model import (
    DynamicWorkPreview,
    RunSnapshot,
    SnapshotReason,
    VisibilityScope,
    build_run_graph,
    explain_run_snapshot,
    redact,
    summarize,
)
from squidmesh_es.redaction import REDACTED

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
        "recovery_policy",
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


def _rolling_back() -> RunSnapshot:
    """A saga run rolling back after capture failed with a card number in its error."""
    h = Harness(saga_spec())
    h.rolling_back()
    return h.snapshot(T0, include_history=True)


@pytest.mark.parametrize("scope", ["external", "operator"])
def test_a_rollback_keeps_its_step_names_and_loses_the_failure(scope: str) -> None:
    snapshot = _rolling_back()

    redacted = redact(snapshot, scope)

    assert redacted.compensation is not None and snapshot.compensation is not None
    assert redacted.compensation.failure == {}
    assert redacted.compensation.failed_step == "capture"
    assert redacted.compensation.pending == snapshot.compensation.pending
    assert (
        redacted.planned_runnables[-1].compensation == snapshot.planned_runnables[-1].compensation
    )
    assert "4242" not in _text(redacted)
    assert "4242" in _text(redact(snapshot, "auditor"))


def test_operators_see_the_recovery_policy_and_the_rollback_details() -> None:
    explanation = explain_run_snapshot(_rolling_back(), now=T0)

    operator = redact(explanation, "operator")
    external = redact(explanation, "external")

    assert operator.evidence["recovery_policy"] == explanation.evidence["recovery_policy"]
    details = operator.details["compensation"]
    assert isinstance(details, dict) and details["pending"] == ["authorize", "reserve"]
    assert details["failure"] == {}
    assert external.details == {} and external.evidence == {}
    assert external.summary == explanation.summary  # step names only
    assert "4242" not in _text(operator) + _text(external)


def _scheduled_dynamic_snapshot() -> tuple[Harness, RunSnapshot]:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.schedule_dynamic("deliver:chat_1")
    return h, h.snapshot(T0, include_history=True)


@pytest.mark.parametrize("scope", ["external", "operator"])
def test_dynamic_nodes_keep_their_shape_and_lose_input_and_metadata_values(scope: str) -> None:
    _, snapshot = _scheduled_dynamic_snapshot()
    graph = build_run_graph(snapshot, transition_spec(), include_history=True)

    redacted = redact(graph, scope)

    node = next(n for n in redacted.nodes if n.id == "deliver:chat_1")
    assert node.dynamic and node.dynamic_key == "fanout" and node.origin is not None
    assert node.input == {} and node.metadata == {}
    assert redacted.dynamic_work_overlays == graph.dynamic_work_overlays
    (work,) = redacted.dynamic_work
    assert work["metadata"] == {} and work["status"] == "scheduled"
    assert work["nodes"] == [
        {"id": "deliver:chat_1", "action": "chat.deliver", "input": {}, "metadata": {}}
    ]
    assert '"ops"' not in _text(redacted)


def _preview() -> DynamicWorkPreview:
    """A preview shaped as `preview_dynamic_work` builds it: record and overlaid graph."""
    h, snapshot = _scheduled_dynamic_snapshot()
    record = {
        "dynamic_key": "more",
        "origin": {"runnable_key": f"{h.run.id}:load:1", "step": "load", "attempt": 1},
        "nodes": [{"id": "extra", "action": None, "input": {"card": "4242"}, "metadata": {}}],
        "edges": [],
        "metadata": {"ticket": "T-1", "api_key": "[REDACTED]"},
        "reason": "runtime_fanout",
        "status": "recorded",
    }
    overlaid = snapshot.model_copy(
        update={"dynamic_work": [*snapshot.dynamic_work, {**record, "recorded_at": "t"}]}
    )
    graph = build_run_graph(overlaid, transition_spec(), include_history=True)
    return DynamicWorkPreview(
        run_id=str(h.run.id),
        duplicate=False,
        recordable=True,
        origin_node_id="load",
        added_node_ids=["extra"],
        added_edge_ids=["load:dynamic:extra"],
        warnings=[],
        dynamic_work=record,
        graph=graph.to_map(),
    )


def test_an_auditor_sees_the_whole_preview() -> None:
    preview = _preview()

    assert redact(preview, "auditor") == preview


@pytest.mark.parametrize("scope", ["external", "operator"])
def test_a_preview_keeps_ids_and_topology_and_loses_values(scope: str) -> None:
    preview = _preview()

    redacted = redact(preview, scope)

    assert isinstance(redacted, DynamicWorkPreview)
    assert redacted.added_node_ids == ["extra"] and redacted.recordable
    assert redacted.added_edge_ids == ["load:dynamic:extra"]
    assert redacted.dynamic_work["metadata"] == {}
    assert redacted.dynamic_work["nodes"] == [
        {"id": "extra", "action": None, "input": {}, "metadata": {}}
    ]
    nodes = redacted.graph["nodes"]
    assert isinstance(nodes, list)
    assert [n["id"] for n in nodes if isinstance(n, dict)] == [
        n["id"]
        for n in preview.graph["nodes"]  # type: ignore[union-attr]
    ]
    assert redacted.graph["edges"] == preview.graph["edges"]
    shown = redacted.to_map()
    assert shown["recordable?"] is True and shown["duplicate?"] is False
    for secret in ("4242", "T-1", "inv-1", '"ops"'):
        assert secret not in _text(redacted)
