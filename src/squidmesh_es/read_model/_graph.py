"""`RunGraph`: a run drawn on its declared graph, for UIs (api catalog 2.14 and 5.3).

Nodes are the spec's steps, then every other step the run planned (compensation callbacks
``compensate:<step>`` and scheduled dynamic nodes, in planning order), then dynamic nodes
that are only recorded. A node's status is derived from the snapshot's runnable facts, so a
scheduled dynamic node reads like any step and appears once. Edges are the spec's edges
with the status the run gave them, then the dynamic edges of recorded and scheduled work,
then one ``compensation`` edge from each step a rollback undoes to its callback. When the
definition cannot be loaded the graph still shows node state, with no edges (guide 3.17).
Unless ``include_history`` is set, nodes carry no input, output, error, manual state or
attempts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from squidmesh_es.read_model._deadline import DeadlineView
from squidmesh_es.read_model._dynamic_work import DynamicNode, DynamicWork, planned_dynamic_node
from squidmesh_es.read_model._json import JsonMap, ReadModel, to_json, to_json_map
from squidmesh_es.read_model._snapshot import (
    AppliedRunnable,
    AttemptView,
    RunnableView,
    RunSnapshot,
)
from squidmesh_es.read_model._vocab import EdgeStatus, NodeStatus, SnapshotStatus
from squidmesh_es.workflow import EdgeType, SpecEdge, StepSpec, WorkflowSpec

__all__ = ["GraphEdge", "GraphNode", "RunGraph", "build_run_graph"]

_ACTIVE = (
    NodeStatus.PENDING,
    NodeStatus.DEFERRED,
    NodeStatus.RUNNING,
    NodeStatus.RETRYING,
    NodeStatus.PAUSED,
)
_CLOSED = (EdgeStatus.SKIPPED, EdgeStatus.BLOCKED)


class GraphNode(ReadModel):
    """One step of the run graph."""

    id: str
    action: str | None = None
    status: NodeStatus
    current: bool = False
    input: JsonMap | None = None
    output: JsonMap | None = None
    error: JsonMap | None = None
    recovery: JsonMap | None = None
    transition: JsonMap | None = None
    """The route the step's latest applied result selected."""
    manual_state: JsonMap | None = None
    attempts: list[JsonMap] = []
    deadline: DeadlineView | None = None
    dynamic: bool = False
    origin: JsonMap | None = None
    """Dynamic nodes: the runnable that proposed them, ``{runnable_key, step, attempt}``."""
    metadata: JsonMap = {}
    """Dynamic nodes: the proposal's metadata with the node's own on top (redacted on write)."""
    dynamic_key: str | None = None
    """Dynamic nodes: the work they belong to (its overlay in `RunGraph.dynamic_work_overlays`)."""
    compensates: str | None = None
    """Compensation callbacks (``compensate:<step>``): the completed step they undo."""

    def to_map(self, *, plain_keys: bool = False) -> JsonMap:
        """The node in the graph-inspection UI shape (``current?``, ``dynamic?``).

        With ``plain_keys``, the same map with identifier keys (``current``, ``dynamic``).
        """
        data = to_json_map(self.model_dump(mode="json"))
        data[_key("current", plain_keys)] = data.pop("current")
        data[_key("dynamic", plain_keys)] = data.pop("dynamic")
        return data


class GraphEdge(ReadModel):
    """One edge of the run graph with the status the run gave it."""

    id: str
    from_step: str
    to: str
    type: str
    """``transition``, ``dependency``, ``dynamic``, or ``compensation`` (a step to the callback
    undoing it, ``<step>:compensation:compensate:<step>``, always ``selected``)."""
    status: EdgeStatus
    outcome: str | None = None
    condition: JsonMap | None = None
    recovery: str | None = None

    def to_map(self, *, plain_keys: bool = False) -> JsonMap:
        """The edge in the UI shape: ``from`` plus one boolean per status (``selected?``...).

        With ``plain_keys``, the booleans are ``selected``, ``skipped``, ``pending``, ``blocked``.
        """
        data = to_json_map(self.model_dump(mode="json"))
        data["from"] = data.pop("from_step")
        for status in EdgeStatus:
            data[_key(status.value, plain_keys)] = self.status is status
        return data


class RunGraph(ReadModel):
    """The run's graph inspection; `to_map` gives the stable UI form."""

    run_id: str
    workflow: str
    source: str = "read_model"
    status: SnapshotStatus
    terminal: bool
    definition_version: str | None
    current_node_id: str | None
    current_node_ids: list[str]
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    """Empty when the definition could not be loaded."""
    child_runs: list[JsonMap]
    child_links: list[JsonMap]
    dynamic_work: list[JsonMap]
    dynamic_work_overlays: list[JsonMap]
    """Per dynamic-work record: ``dynamic_key``, ``status`` (``recorded`` or ``scheduled``),
    ``origin_node_id``, ``added_node_ids``, ``added_edge_ids`` (declared, then implied
    ``<origin>:dynamic:<node>``), ``node_count`` and ``edge_count``."""
    deadlines: list[DeadlineView]
    anomalies: list[JsonMap]

    def to_map(self, *, plain_keys: bool = False) -> JsonMap:
        """The graph as JSON with the spec's UI keys (``terminal?``, node and edge maps).

        The spec's UI names end in ``?``, which ``jq .terminal?`` and dot access cannot
        read; ``plain_keys`` drops the ``?`` (``terminal``, ``current``, ``selected``...),
        as the CLI does. Nothing else differs.
        """
        data = to_json_map(self.model_dump(mode="json"))
        data[_key("terminal", plain_keys)] = data.pop("terminal")
        data["nodes"] = [node.to_map(plain_keys=plain_keys) for node in self.nodes]
        data["edges"] = [edge.to_map(plain_keys=plain_keys) for edge in self.edges]
        return data


def _key(name: str, plain: bool) -> str:
    """A UI flag's key: the spec's ``name?``, or ``name`` itself."""
    return name if plain else f"{name}?"


def build_run_graph(
    snapshot: RunSnapshot, spec: WorkflowSpec | None, *, include_history: bool = False
) -> RunGraph:
    """The graph of ``snapshot`` over ``spec``'s declared steps and edges.

    Outputs appear only when the snapshot itself was built with ``include_history``.
    """
    facts = _StepFacts(snapshot)
    work = DynamicWork(snapshot.dynamic_work)
    # Once the run ended or began rolling back, no step it has not planned will run.
    closed = snapshot.terminal or snapshot.compensation is not None
    names = list(spec.step_names) if spec is not None else []
    names += [step for step in facts.steps_seen if step not in names]
    statuses = {name: _step_status(name, facts, snapshot, closed) for name in names}
    declared = spec.edges() if spec is not None else ()
    edges = [_edge(e, facts, statuses, closed) for e in declared]
    # A step every way into which is skipped or blocked is skipped, and so are its own
    # routes: repeat until nothing changes (at most once per step).
    for _ in names:
        changed = False
        for name, status in statuses.items():
            incoming = [e.status for e in edges if e.to == name]
            if status is NodeStatus.WAITING and incoming and all(s in _CLOSED for s in incoming):
                statuses[name] = NodeStatus.SKIPPED
                changed = True
        if not changed:
            break
        edges = [_edge(e, facts, statuses, closed) for e in declared]
    nodes = [
        _node(name, statuses[name], spec, facts, work, snapshot, include_history) for name in names
    ]
    recorded = [node for node in work.nodes if node.id not in statuses]
    statuses.update({node.id: NodeStatus.RECORDED for node in recorded})
    nodes += [_recorded_node(node, include_history) for node in recorded]
    if spec is not None:
        edges += _dynamic_edges(work, statuses, snapshot.terminal)
        edges += _compensation_edges(snapshot, statuses)
        edges = _first_of_each_id(edges)
    current = [node.id for node in nodes if node.current]
    return RunGraph(
        run_id=snapshot.run_id,
        workflow=snapshot.workflow,
        status=snapshot.status,
        terminal=snapshot.terminal,
        definition_version=snapshot.definition_version,
        current_node_id=current[0] if current else None,
        current_node_ids=current,
        nodes=nodes,
        edges=edges,
        child_runs=list(snapshot.child_runs),
        child_links=_child_links(snapshot),
        dynamic_work=list(snapshot.dynamic_work),
        dynamic_work_overlays=[record.overlay() for record in work.records],
        deadlines=list(snapshot.deadlines),
        anomalies=list(snapshot.anomalies),
    )


class _StepFacts:
    """The snapshot's runnables, attempts and applied results grouped by step."""

    def __init__(self, snapshot: RunSnapshot) -> None:
        self.planned: dict[str, list[RunnableView]] = {}
        self.attempts: dict[str, list[AttemptView]] = {}
        self.applied: dict[str, list[AppliedRunnable]] = {}
        self.steps_seen: list[str] = []
        for runnable in snapshot.planned_runnables:
            self._see(runnable.step)
            self.planned.setdefault(runnable.step, []).append(runnable)
        for attempt in snapshot.attempts:
            self._see(attempt.step)
            self.attempts.setdefault(attempt.step, []).append(attempt)
        for applied in snapshot.applied_runnables:
            self.applied.setdefault(applied.step, []).append(applied)

    def _see(self, step: str) -> None:
        if step not in self.steps_seen:
            self.steps_seen.append(step)

    def resolved(self, step: str) -> AppliedRunnable | None:
        """The step's latest applied result that chose a route.

        Neither a try that was retried nor a deferral counts: what follows them decides.
        """
        for applied in reversed(self.applied.get(step, [])):
            if not _is_retry(applied.transition) and not _is_deferral(applied.transition):
                return applied
        return None


def _is_retry(transition: JsonMap | None) -> bool:
    return transition is not None and "retry_runnable_key" in transition


def _is_deferral(transition: JsonMap | None) -> bool:
    return transition is not None and "deferred_runnable_key" in transition


def _live_status(attempts: list[AttemptView], as_of: datetime) -> NodeStatus | None:
    if any(a.status.value in ("claimed", "completed") and not a.applied for a in attempts):
        return NodeStatus.RUNNING
    waiting = [a for a in attempts if a.status.value in ("available", "retry_scheduled")]
    if any(a.is_retry for a in waiting):
        return NodeStatus.RETRYING
    if any(a.deferred is not None and a.visible_at > as_of for a in waiting):
        return NodeStatus.DEFERRED
    return NodeStatus.PENDING if waiting else None


def _step_status(name: str, facts: _StepFacts, snapshot: RunSnapshot, closed: bool) -> NodeStatus:
    manual = snapshot.manual_state
    if manual is not None and manual.step == name:
        return NodeStatus.PAUSED
    if not snapshot.terminal:
        live = _live_status(facts.attempts.get(name, []), snapshot.as_of)
        if live is not None:
            return live
        if any(not p.applied for p in facts.planned.get(name, [])):
            return NodeStatus.PENDING  # planned, not yet in the queue
    applied = facts.applied.get(name, [])
    if applied:
        latest = applied[-1]
        if latest.outcome == "ok":
            return NodeStatus.COMPLETED
        if latest.outcome == "deferred":
            return NodeStatus.DEFERRED  # the run ended while the step waited to go again
        if _is_retry(latest.transition) and not snapshot.terminal:
            return NodeStatus.RETRYING
        return NodeStatus.FAILED
    return NodeStatus.SKIPPED if closed else NodeStatus.WAITING


def _node(
    name: str,
    status: NodeStatus,
    spec: WorkflowSpec | None,
    facts: _StepFacts,
    work: DynamicWork,
    snapshot: RunSnapshot,
    include_history: bool,
) -> GraphNode:
    step: StepSpec | None = None
    if spec is not None and name in spec.step_names:
        step = spec.step(name)
    planned = facts.planned.get(name, [])
    latest_planned = planned[-1] if planned else None
    applied = facts.applied.get(name, [])
    resolved = facts.resolved(name)
    deadline = next((d for d in snapshot.deadlines if d.step == name), None)
    compensation = next((p.compensation for p in planned if p.compensation is not None), None)
    undone = compensation.get("step") if compensation is not None else None
    node = GraphNode(
        id=name,
        action=(step.action if step else None)
        or (latest_planned.action if latest_planned else None),
        status=status,
        current=status in _ACTIVE,
        recovery=_recovery(step, latest_planned),
        transition=resolved.transition if resolved else None,
        deadline=deadline,
        compensates=undone if isinstance(undone, str) else None,
    )
    dynamic = work.node(name) or planned_dynamic_node(name, planned)
    if dynamic is not None:
        node = node.model_copy(update=dynamic.node_fields())
    if not include_history:
        return node
    attempts: list[JsonMap] = [to_json_map(a.model_dump(mode="json")) for a in applied]
    attempts += [to_json_map(a.model_dump(mode="json")) for a in facts.attempts.get(name, [])]
    ok = [a for a in applied if a.outcome == "ok"]
    errors = [a.error for a in applied if a.error is not None]
    errors += [a.error for a in facts.attempts.get(name, []) if a.error is not None]
    manual = snapshot.manual_state
    return node.model_copy(
        update={
            "input": latest_planned.input if latest_planned else None,
            "output": ok[-1].result if ok else None,
            "error": errors[-1] if errors else None,
            "manual_state": (
                to_json_map(manual.model_dump(mode="json"))
                if manual is not None and manual.step == name
                else None
            ),
            "attempts": attempts,
        }
    )


def _recorded_node(dynamic: DynamicNode, include_history: bool) -> GraphNode:
    """A dynamic node that is only recorded: inspection data, never run."""
    action = dynamic.raw.get("action")
    node = GraphNode(
        id=dynamic.id,
        action=action if isinstance(action, str) else None,
        status=NodeStatus.RECORDED,
        **dynamic.node_fields(),
    )
    if include_history:
        node = node.model_copy(update={"input": to_json_map(dynamic.raw.get("input"))})
    return node


def _recovery(step: StepSpec | None, planned: RunnableView | None) -> JsonMap | None:
    if planned is not None and planned.recovery is not None:
        return planned.recovery
    if step is None:
        return None
    recovery: JsonMap = {
        "irreversible": step.irreversible,
        "compensatable": step.compensatable,
    }
    if step.compensate is not None:
        recovery["compensate"] = to_json(step.compensate.to_dict())
    return recovery


def _edge(
    edge: SpecEdge, facts: _StepFacts, statuses: dict[str, NodeStatus], closed: bool
) -> GraphEdge:
    if edge.type is EdgeType.DEPENDENCY:
        status = _dependency_status(statuses.get(edge.from_step), closed)
    elif statuses.get(edge.from_step) is NodeStatus.SKIPPED:
        status = EdgeStatus.SKIPPED
    else:
        status = _transition_status(edge, facts, closed)
    data = edge.to_dict()
    condition = data.get("condition")
    return GraphEdge(
        id=edge.id,
        from_step=edge.from_step,
        to=edge.to,
        type=edge.type.value,
        status=status,
        outcome=edge.outcome.value if edge.outcome else None,
        condition=to_json_map(condition) if isinstance(condition, dict) else None,
        recovery=edge.recovery.value if edge.recovery else None,
    )


def _dependency_status(source: NodeStatus | None, closed: bool) -> EdgeStatus:
    if source is NodeStatus.COMPLETED:
        return EdgeStatus.SELECTED
    if source is NodeStatus.FAILED:
        return EdgeStatus.BLOCKED
    return EdgeStatus.SKIPPED if closed else EdgeStatus.PENDING


def _takes(transition: JsonMap | None, edge: SpecEdge) -> bool:
    if transition is None:
        return False
    if "edge_id" in transition:
        return transition["edge_id"] == edge.id
    # Results applied before edge ids were recorded: match the unconditional route.
    return edge.condition is None and (
        transition.get("from"),
        transition.get("on"),
        transition.get("to"),
    ) == (edge.from_step, edge.outcome.value if edge.outcome else None, edge.to)


def _transition_status(edge: SpecEdge, facts: _StepFacts, closed: bool) -> EdgeStatus:
    applied = facts.applied.get(edge.from_step, [])
    if any(_takes(a.transition, edge) for a in applied):
        return EdgeStatus.SELECTED
    if facts.resolved(edge.from_step) is not None or closed:
        return EdgeStatus.SKIPPED
    return EdgeStatus.PENDING


def _child_links(snapshot: RunSnapshot) -> list[JsonMap]:
    links: list[JsonMap] = []
    for child in snapshot.child_runs:
        origin = child.get("origin")
        step = origin.get("step") if isinstance(origin, dict) else None
        child_id = child.get("child_run_id")
        if not isinstance(step, str) or not isinstance(child_id, str):
            continue  # a stale fact without both ends draws no link
        links.append(
            {
                "id": f"{step}:child_run:{child_id}",
                "from": step,
                "to": child_id,
                "type": "child_run",
                "status": "linked",
                **{
                    k: child.get(k)
                    for k in (
                        "child_run_id",
                        "child_workflow",
                        "child_trigger",
                        "child_key",
                        "origin",
                        "metadata",
                        "started_at",
                    )
                },
            }
        )
    return links


def _first_of_each_id(edges: Iterable[GraphEdge]) -> list[GraphEdge]:
    """Edges with unique ids, the first drawn winning: UIs key edges by id."""
    seen: set[str] = set()
    unique: list[GraphEdge] = []
    for edge in edges:
        if edge.id not in seen:
            seen.add(edge.id)
            unique.append(edge)
    return unique


def _compensation_edges(snapshot: RunSnapshot, statuses: dict[str, NodeStatus]) -> list[GraphEdge]:
    """One edge from each step a rollback undoes to its ``compensate:<step>`` callback."""
    edges: list[GraphEdge] = []
    for runnable in snapshot.planned_runnables:
        undone = (runnable.compensation or {}).get("step")
        if not isinstance(undone, str) or undone not in statuses:
            continue
        edges.append(
            GraphEdge(
                id=f"{undone}:compensation:{runnable.step}",
                from_step=undone,
                to=runnable.step,
                type="compensation",
                status=EdgeStatus.SELECTED,
            )
        )
    return edges


# -- dynamic work ----------------------------------------------------------------------------


def _dynamic_edges(
    work: DynamicWork, statuses: dict[str, NodeStatus], terminal: bool
) -> list[GraphEdge]:
    """The dynamic edges of every record.

    Scheduled nodes run at once, whatever their edges, so an edge of scheduled work reads
    like a dependency edge: ``selected`` once its source completed, ``blocked`` if it
    failed, ``pending`` meanwhile. An edge of recorded work was never taken: ``pending``.
    Either is ``skipped`` once the run ended without it being taken.
    """
    edges: list[GraphEdge] = []
    for record in work.records:
        for edge_id, source, target in record.edges:
            if record.scheduled:
                status = _dependency_status(statuses.get(source), terminal)
            else:
                status = EdgeStatus.SKIPPED if terminal else EdgeStatus.PENDING
            edges.append(
                GraphEdge(id=edge_id, from_step=source, to=target, type="dynamic", status=status)
            )
    return edges
