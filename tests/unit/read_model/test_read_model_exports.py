from __future__ import annotations

import squidmesh_es.read_model as read_model


def test_read_model_exports_are_pinned() -> None:
    assert set(read_model.__all__) == {
        "HIDDEN_KEYS",
        "OPERATOR_EVIDENCE_KEYS",
        "OPERATOR_KEYS",
        "SUMMARY_ANOMALY_KEYS",
        "AppliedRunnable",
        "AttemptHistoryStatus",
        "AttemptRecord",
        "AttemptView",
        "ClaimRecord",
        "CommandRecord",
        "CompensationView",
        "DeadlineStatus",
        "DeadlineView",
        "DynamicWorkPreview",
        "EdgeStatus",
        "Explanation",
        "GraphEdge",
        "GraphNode",
        "ManualState",
        "NextAction",
        "NodeStatus",
        "RunGraph",
        "RunSnapshot",
        "RunSummary",
        "RunnableView",
        "SnapshotReason",
        "SnapshotStatus",
        "ThreadRevisions",
        "VisibilityScope",
        "build_run_graph",
        "build_run_snapshot",
        "explain_run_snapshot",
        "redact",
        "summarize",
    }
    assert all(hasattr(read_model, name) for name in read_model.__all__)
    assert all(not name.startswith("_") for name in read_model.__all__)
