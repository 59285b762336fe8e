"""Read models: pure builders of snapshots, explanations, graphs and listings.

Everything here is computed from aggregate state and a given ``now``: no I/O, no clock, and
nothing is mutated. Every model is a frozen pydantic model whose ``model_dump(mode="json")``
is JSON-safe.
"""

from squidmesh_es.read_model._compensation import CompensationView
from squidmesh_es.read_model._deadline import DeadlineView
from squidmesh_es.read_model._dynamic_preview import DynamicWorkPreview
from squidmesh_es.read_model._explanation import Explanation, explain_run_snapshot
from squidmesh_es.read_model._graph import GraphEdge, GraphNode, RunGraph, build_run_graph
from squidmesh_es.read_model._redaction import (
    HIDDEN_KEYS,
    OPERATOR_EVIDENCE_KEYS,
    OPERATOR_KEYS,
    redact,
)
from squidmesh_es.read_model._snapshot import (
    AppliedRunnable,
    AttemptHistoryStatus,
    AttemptRecord,
    AttemptView,
    ClaimRecord,
    CommandRecord,
    ManualState,
    RunnableView,
    RunSnapshot,
    ThreadRevisions,
    build_run_snapshot,
)
from squidmesh_es.read_model._summary import SUMMARY_ANOMALY_KEYS, RunSummary, summarize
from squidmesh_es.read_model._vocab import (
    DeadlineStatus,
    EdgeStatus,
    NextAction,
    NodeStatus,
    SnapshotReason,
    SnapshotStatus,
    VisibilityScope,
)

__all__ = [
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
]
