"""Dynamic work: nodes a step discovers at run time, recorded for inspection or scheduled.

A proposal names a stable ``dynamic_key``, the runnable that produced it (its origin), the
nodes (each with an id, an optional action key, input, retry intent and metadata) and
optional edges. Every rule is checked against the run's facts before anything is written;
an identical proposal again is a duplicate, not a second fact. Scheduling turns each node
into a runnable named by the node id, so the normal claim path executes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from squidmesh_es.domain._compensation import COMPENSATE_PREFIX, is_compensating
from squidmesh_es.domain._journal import JSONDict
from squidmesh_es.domain._keys import runnable_key
from squidmesh_es.domain._run import Runnable, WorkflowRun
from squidmesh_es.errors import ActionNotAllowed, InvalidDynamicWork, RunTerminal
from squidmesh_es.redaction import redact_json as redact_metadata
from squidmesh_es.workflow import ActionRegistry, WorkflowSpec, is_json_value

__all__ = [
    "DynamicCheck",
    "DynamicProposal",
    "check_proposal",
    "dynamic_runnables",
]

ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
"""Dynamic keys, node ids and edge ids: stable names, safe in runnable keys and URLs."""

_CONTINUATION_SUFFIX: Final = re.compile(r":[0-9]+:deferred$")
_PROPOSAL_KEYS: Final = {"dynamic_key", "origin", "nodes", "edges", "reason", "metadata"}
_NODE_KEYS: Final = {"id", "action", "input", "retry", "metadata"}
_EDGE_KEYS: Final = {"id", "from", "to", "metadata"}


@dataclass(frozen=True)
class DynamicProposal:
    """A normalized proposal: what the journal records, with metadata already redacted."""

    dynamic_key: str
    origin: JSONDict
    nodes: list[JSONDict]
    edges: list[JSONDict]
    reason: str | None = None
    metadata: JSONDict = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> DynamicProposal:
        """Read a proposal given as a mapping.

        Raises:
            InvalidDynamicWork: a field is missing, unknown or of the wrong shape.
        """
        if not isinstance(raw, Mapping):
            raise InvalidDynamicWork("invalid_dynamic_work", "the proposal must be a mapping")
        _no_unknown(raw, _PROPOSAL_KEYS, "proposal", "invalid_dynamic_work")
        dynamic_key = raw.get("dynamic_key")
        if not isinstance(dynamic_key, str) or not ID_PATTERN.match(dynamic_key):
            raise InvalidDynamicWork("invalid_dynamic_key", "dynamic_key must be a stable id")
        reason = raw.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidDynamicWork("invalid_dynamic_work", "reason must be a string")
        raw_nodes = raw.get("nodes")
        if not isinstance(raw_nodes, Sequence) or isinstance(raw_nodes, str) or not raw_nodes:
            raise InvalidDynamicWork("invalid_dynamic_node", "nodes must be a non-empty list")
        raw_edges = raw.get("edges") or []
        if not isinstance(raw_edges, Sequence) or isinstance(raw_edges, str):
            raise InvalidDynamicWork("invalid_dynamic_edge", "edges must be a list")
        return cls(
            dynamic_key=dynamic_key,
            origin=_origin(raw.get("origin")),
            nodes=[_node(n, i) for i, n in enumerate(raw_nodes)],
            edges=[_edge(e, i) for i, e in enumerate(raw_edges)],
            reason=reason,
            metadata=redact_metadata(_mapping(raw.get("metadata"), "metadata")),
        )

    @property
    def node_ids(self) -> list[str]:
        """The proposed node ids, in order."""
        return [str(node["id"]) for node in self.nodes]

    @property
    def edge_ids(self) -> list[str]:
        """The proposed edge ids, in order."""
        return [str(edge["id"]) for edge in self.edges]

    def record(self, status: str) -> JSONDict:
        """The proposal as a ``DynamicWorkRecorded`` record with ``status``."""
        return {
            "dynamic_key": self.dynamic_key,
            "origin": self.origin,
            "nodes": self.nodes,
            "edges": self.edges,
            "metadata": self.metadata,
            "reason": self.reason,
            "status": status,
        }


@dataclass(frozen=True)
class DynamicCheck:
    """What a valid proposal would add; a duplicate adds nothing."""

    duplicate: bool
    added_node_ids: list[str]
    added_edge_ids: list[str]
    warnings: list[str]


def check_proposal(
    run: WorkflowRun,
    spec: WorkflowSpec,
    proposal: DynamicProposal,
    *,
    status: str,
    registry: ActionRegistry | None,
) -> DynamicCheck:
    """Check ``proposal`` against the run's facts, for recording or scheduling (``status``).

    Raises:
        RunTerminal: the run ended; it takes no new work.
        InvalidDynamicWork: a rule is broken; ``reason`` says which.
        ActionNotAllowed: under a registry, a node names an action it refuses (missing,
            unknown, disabled...); ``reason`` says which.
    """
    if run.is_terminal:
        raise RunTerminal(run.run_id, run.terminal_status)
    scheduling = status == "scheduled"
    if scheduling and is_compensating(run):
        raise InvalidDynamicWork(
            "run_compensating", "the run is rolling back; it takes no new executable work"
        )
    origin = proposal.origin
    planned = run.planned.get(str(origin["runnable_key"]))
    if (
        planned is None
        or planned["step"] != origin["step"]
        or int(planned["attempt_number"]) != origin["attempt"]
    ):
        raise InvalidDynamicWork(
            "invalid_dynamic_origin",
            "the origin must name a planned runnable of this run by key, step and attempt",
        )
    if scheduling and str(origin["runnable_key"]) not in run.applied:
        raise InvalidDynamicWork(
            "dynamic_origin_not_applied", "dynamic work is scheduled only after its origin applied"
        )
    for existing in run.dynamic_work:
        if existing["dynamic_key"] == proposal.dynamic_key:
            same = {k: v for k, v in existing.items() if k != "recorded_at"}
            if same == proposal.record(status):
                return DynamicCheck(True, [], [], ["duplicate_dynamic_work"])
            raise InvalidDynamicWork(
                "conflicting_dynamic_work",
                f"{proposal.dynamic_key!r} is already recorded with other contents",
            )
    _check_nodes(run, spec, proposal)
    _check_edges(run, spec, proposal)
    _check_actions(proposal, registry, scheduling=scheduling)
    return DynamicCheck(False, proposal.node_ids, proposal.edge_ids, [])


def dynamic_runnables(
    run: WorkflowRun, proposal: DynamicProposal, *, now: datetime
) -> list[Runnable]:
    """One runnable per node: named by the node id, visible now, on the run's queue."""
    runnables = []
    for node in proposal.nodes:
        key = runnable_key(run.run_id, str(node["id"]), 1)
        retry = node.get("retry")
        max_attempts = retry.get("max_attempts") if isinstance(retry, dict) else None
        runnables.append(
            Runnable(
                runnable_key=key,
                idempotency_key=key,
                step=str(node["id"]),
                attempt_number=1,
                input=None,
                input_from={"dynamic": proposal.dynamic_key, "node": str(node["id"])},
                visible_at=now,
                queue=run.queue,
                action=node.get("action"),
                # Not declared by the author, so nothing says repeating it is safe.
                recovery={"irreversible": False, "compensatable": False, "compensate": False},
                dynamic={
                    "dynamic_key": proposal.dynamic_key,
                    "origin": proposal.origin,
                    "max_attempts": max_attempts or 1,
                },
            )
        )
    return runnables


# -- reading ------------------------------------------------------------------------------


def _origin(raw: object) -> JSONDict:
    if not isinstance(raw, Mapping):
        raise InvalidDynamicWork("invalid_dynamic_origin", "origin must be a mapping")
    key, step, attempt = raw.get("runnable_key"), raw.get("step"), raw.get("attempt")
    if not isinstance(key, str) or not key or not isinstance(step, str) or not step:
        raise InvalidDynamicWork("invalid_dynamic_origin", "origin needs runnable_key and step")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise InvalidDynamicWork("invalid_dynamic_origin", "origin attempt must be positive")
    return {"runnable_key": key, "step": step, "attempt": attempt}


def _node(raw: object, index: int) -> JSONDict:
    if not isinstance(raw, Mapping):
        raise InvalidDynamicWork("invalid_dynamic_node", f"node {index} must be a mapping")
    _no_unknown(raw, _NODE_KEYS, f"node {index}", "invalid_dynamic_node")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not ID_PATTERN.match(node_id):
        raise InvalidDynamicWork("invalid_dynamic_node", f"node {index} needs a stable id")
    if _reserved(node_id):
        raise InvalidDynamicWork(
            "invalid_dynamic_node",
            f"node id {node_id!r} is reserved: compensation callbacks are named "
            f"'{COMPENSATE_PREFIX}<step>', continuations '<step>:<attempt>:deferred:<n>'",
            node_id=node_id,
        )
    action = raw.get("action")
    if action is not None and not isinstance(action, str):
        raise InvalidDynamicWork("invalid_dynamic_node", f"node {node_id!r}: bad action key")
    node: JSONDict = {"id": node_id, "action": action, "input": _mapping(raw.get("input"), "input")}
    retry = raw.get("retry")
    if retry is not None:
        attempts = retry.get("max_attempts") if isinstance(retry, Mapping) else None
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise InvalidDynamicWork(
                "invalid_dynamic_node", f"node {node_id!r}: retry needs a positive max_attempts"
            )
        node["retry"] = {"max_attempts": attempts}
    node["metadata"] = redact_metadata(_mapping(raw.get("metadata"), "metadata"))
    return node


def _reserved(node_id: str) -> bool:
    """Whether a node named ``node_id`` could take a runnable key the runtime derives itself.

    A node's keys are ``<run>:<id>:<attempt>`` and ``<run>:<id>:<attempt>:deferred:<n>``: an
    id starting with ``compensate:`` names a callback, and an id ending ``:<n>:deferred``
    would give its first attempt another runnable's continuation key. Either would make a
    later plan conflict.
    """
    return node_id.startswith(COMPENSATE_PREFIX) or _CONTINUATION_SUFFIX.search(node_id) is not None


def _edge(raw: object, index: int) -> JSONDict:
    if not isinstance(raw, Mapping):
        raise InvalidDynamicWork("invalid_dynamic_edge", f"edge {index} must be a mapping")
    _no_unknown(raw, _EDGE_KEYS, f"edge {index}", "invalid_dynamic_edge")
    source, target = raw.get("from"), raw.get("to")
    if not isinstance(source, str) or not isinstance(target, str):
        raise InvalidDynamicWork("invalid_dynamic_edge", f"edge {index} needs from and to")
    edge_id = raw.get("id", f"{source}:dynamic:{target}")
    if not isinstance(edge_id, str) or not ID_PATTERN.match(edge_id):
        raise InvalidDynamicWork("invalid_dynamic_edge", f"edge {index} needs a stable id")
    return {
        "id": edge_id,
        "from": source,
        "to": target,
        "metadata": redact_metadata(_mapping(raw.get("metadata"), "metadata")),
    }


def _mapping(raw: object, what: str) -> JSONDict:
    """``raw`` as a JSON object, refused unless it reads back from the journal unchanged.

    Otherwise an identical proposal would conflict with its own record once reloaded.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise InvalidDynamicWork("invalid_dynamic_work", f"{what} must be a mapping")
    copied = dict(raw)
    if not is_json_value(copied):
        raise InvalidDynamicWork(
            "invalid_dynamic_work",
            f"{what} must be JSON: string keys, values that survive JSON (no tuples, sets, ...)",
        )
    return copied


def _no_unknown(raw: Mapping[str, object], allowed: set[str], what: str, reason: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise InvalidDynamicWork(reason, f"{what} has unknown fields {unknown}")


# -- rules --------------------------------------------------------------------------------


def _check_nodes(run: WorkflowRun, spec: WorkflowSpec, proposal: DynamicProposal) -> None:
    ids = proposal.node_ids
    taken = set(spec.step_names) | {str(p["step"]) for p in run.planned.values()}
    for work in run.dynamic_work:
        taken |= {str(node["id"]) for node in work["nodes"]}
    for node_id in ids:
        if ids.count(node_id) > 1 or node_id in taken:
            raise InvalidDynamicWork(
                "duplicate_dynamic_node",
                f"node {node_id!r} repeats a declared step or an existing node",
                node_id=node_id,
            )


def _check_edges(run: WorkflowRun, spec: WorkflowSpec, proposal: DynamicProposal) -> None:
    """Edges join known nodes, and their ids are new to the graph, so none hides another."""
    ids = proposal.edge_ids
    known = set(proposal.node_ids) | set(spec.step_names) | {str(proposal.origin["step"])}
    taken = {edge.id for edge in spec.edges()}
    for work in run.dynamic_work:
        known |= {str(node["id"]) for node in work["nodes"]}
        taken |= {str(edge["id"]) for edge in work["edges"]}
        origin = str(work["origin"]["step"])
        taken |= {f"{origin}:dynamic:{node['id']}" for node in work["nodes"]}
    for edge in proposal.edges:
        if ids.count(str(edge["id"])) > 1 or edge["id"] in taken:
            raise InvalidDynamicWork(
                "invalid_dynamic_edge", f"edge {edge['id']!r} repeats an existing edge id"
            )
        if edge["from"] not in known or edge["to"] not in known:
            raise InvalidDynamicWork(
                "invalid_dynamic_edge", f"edge {edge['id']!r} joins an unknown node"
            )


def _check_actions(
    proposal: DynamicProposal, registry: ActionRegistry | None, *, scheduling: bool
) -> None:
    if registry is None:
        if scheduling:
            raise InvalidDynamicWork(
                "missing_action_registry", "scheduling needs the host's action registry"
            )
        return
    for node in proposal.nodes:
        action = node.get("action")
        reason = registry.refusal(action)
        if reason is not None:
            # The refusal starting such an action meets anywhere else (ActionRegistry.resolve).
            raise ActionNotAllowed(action if isinstance(action, str) else "", reason)
