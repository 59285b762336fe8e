"""``squidmesh graph``: a run drawn on its workflow graph, as Mermaid or as the JSON map."""

from __future__ import annotations

import json
import re

import click

from squidmesh_es.cli._options import (
    database_url_option,
    fail,
    import_option,
    json_option,
    load_workflows,
    open_journal,
    scope_option,
)
from squidmesh_es.errors import SquidMeshError
from squidmesh_es.read_model import EdgeStatus, GraphEdge, NodeStatus, RunGraph, redact
from squidmesh_es.workflow import COMPLETE

__all__ = ["graph_command", "to_mermaid"]


@click.command("graph")
@click.argument("run_id")
@database_url_option()
@import_option()
@click.option("--history", is_flag=True, help="Include inputs, outputs and attempts per node.")
@scope_option
@json_option
def graph_command(
    run_id: str,
    database_url: str,
    modules: tuple[str, ...],
    history: bool,
    scope: str,
    as_json: bool,
) -> None:
    """Draw RUN_ID on its workflow graph: Mermaid by default, the UI map with --json.

    Edges come from the workflow's code: pass --import with the module defining it, or the
    graph has nodes only (a hint goes to stderr).
    """
    workflows = load_workflows(modules)
    try:
        with open_journal(database_url, workflows=workflows, create=False) as mesh:
            graph = redact(mesh.inspect_run_graph(run_id, include_history=history), scope)
            # A start_spec run carries its definition: its edges need no --import.
            registered = mesh.definition(mesh.get_run(run_id)) is not None
    except SquidMeshError as error:
        fail(error, as_json=as_json)
    if as_json:
        click.echo(json.dumps(graph.to_map(plain_keys=True), indent=2))
    else:
        click.echo(to_mermaid(graph, registered=registered))
    if not registered:
        click.echo(
            f"note: workflow {graph.workflow!r} is not registered, so the graph has no edges; "
            "pass --import with the module that defines it",
            err=True,
        )


_STATUS_STYLES: dict[NodeStatus, str] = {
    NodeStatus.WAITING: "fill:#f5f5f5,stroke:#9e9e9e,color:#616161",
    NodeStatus.PENDING: "fill:#fff8e1,stroke:#f9a825",
    NodeStatus.DEFERRED: "fill:#ede7f6,stroke:#7e57c2",
    NodeStatus.RUNNING: "fill:#e3f2fd,stroke:#1e88e5",
    NodeStatus.RETRYING: "fill:#fff3e0,stroke:#fb8c00",
    NodeStatus.PAUSED: "fill:#fce4ec,stroke:#d81b60",
    NodeStatus.COMPLETED: "fill:#e8f5e9,stroke:#43a047",
    NodeStatus.FAILED: "fill:#ffebee,stroke:#e53935",
    NodeStatus.SKIPPED: "fill:#fafafa,stroke:#bdbdbd,color:#9e9e9e,stroke-dasharray:4 3",
    NodeStatus.RECORDED: "fill:#e0f7fa,stroke:#00acc1,stroke-dasharray:2 2",
}
_ARROWS: dict[EdgeStatus, str] = {
    EdgeStatus.SELECTED: "==>",
    EdgeStatus.PENDING: "-->",
    EdgeStatus.SKIPPED: "-.->",
    EdgeStatus.BLOCKED: "--x",
}
_EDGE_STYLES: dict[EdgeStatus, str] = {
    EdgeStatus.SELECTED: "stroke:#43a047,stroke-width:3px",
    EdgeStatus.PENDING: "stroke:#f9a825",
    EdgeStatus.SKIPPED: "stroke:#bdbdbd,stroke-dasharray:4 3",
    EdgeStatus.BLOCKED: "stroke:#e53935",
}
_OPERATORS = {"equals": "==", "greater_than": ">", "less_than": "<"}
_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click"}
    | {"linkstyle", "direction", "default", "call", "href"}
)


def to_mermaid(graph: RunGraph, *, registered: bool = True) -> str:
    """``graph`` as a Mermaid ``flowchart TD``.

    Nodes keep their step name as Mermaid id when it is a plain identifier (``n<i>`` otherwise),
    are drawn as parallelograms when dynamic and leaning the other way when they compensate a
    step, and get one ``classDef`` per node status plus ``current``; edges are labelled by outcome
    and condition, drawn thick when selected, dotted when skipped, crossed when blocked and
    plain when pending, and coloured with ``linkStyle``.
    """
    ids = _MermaidIds()
    lines = [
        "flowchart TD",
        f"  %% run {graph.run_id} · workflow {graph.workflow} · status {graph.status.value}",
    ]
    if not registered:
        lines.append("  %% workflow code not registered: nodes only (pass --import)")
    for node in graph.nodes:
        shape = ("[", "]")
        if node.dynamic:
            shape = ("[/", "/]")
        elif node.compensates is not None:
            shape = ("[\\", "\\]")
        label = node.id + f"<br/><i>{node.status.value}</i>"
        lines.append(f'  {ids.of(node.id)}{shape[0]}"{_escape(label)}"{shape[1]}')
    targets = {e.to for e in graph.edges} - {n.id for n in graph.nodes}
    for target in sorted(targets):
        if target == COMPLETE:
            lines.append(f'  {ids.of(target)}(("{COMPLETE}"))')
        else:
            lines.append(f'  {ids.of(target)}["{_escape(target)}"]')
    link_styles: list[str] = []
    for index, edge in enumerate(graph.edges):
        label = _edge_label(edge)
        arrow = _ARROWS[edge.status]
        text = f'|"{_escape(label)}"|' if label else ""
        lines.append(f"  {ids.of(edge.from_step)} {arrow}{text} {ids.of(edge.to)}")
        link_styles.append(f"  linkStyle {index} {_EDGE_STYLES[edge.status]}")
    for link in graph.child_links:
        source, child = str(link.get("from")), str(link.get("to"))
        child_node = ids.of(f"child run {child}")
        workflow = link.get("child_workflow")
        label = f"child run {child[:8]}" + (f"<br/>{workflow}" if workflow else "")
        lines.append(f'  {child_node}[["{_escape(label)}"]]')
        lines.append(f'  {ids.of(source)} -.->|"child"| {child_node}')
    lines.extend(link_styles)
    for status, style in _STATUS_STYLES.items():
        lines.append(f"  classDef {status.value} {style}")
    lines.append("  classDef current stroke-width:3px")
    by_status: dict[str, list[str]] = {}
    for node in graph.nodes:
        by_status.setdefault(node.status.value, []).append(ids.of(node.id))
    for status_name, members in by_status.items():
        lines.append(f"  class {','.join(members)} {status_name}")
    current = [ids.of(n.id) for n in graph.nodes if n.current]
    if current:
        lines.append(f"  class {','.join(current)} current")
    return "\n".join(lines)


class _MermaidIds:
    """Stable, safe Mermaid ids: the name itself when plain, else ``n<i>``."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._used: set[str] = set()

    def of(self, name: str) -> str:
        if name in self._ids:
            return self._ids[name]
        candidate = name
        if not _PLAIN_ID.match(name) or name.lower() in _RESERVED or name in self._used:
            candidate = f"n{len(self._ids)}"
            while candidate in self._used:
                candidate += "_"
        self._ids[name] = candidate
        self._used.add(candidate)
        return candidate


def _edge_label(edge: GraphEdge) -> str:
    if edge.type == "dependency":
        return "after"
    if edge.type == "dynamic":
        return "dynamic"
    if edge.type == "compensation":
        return "undo"
    parts = [edge.outcome or ""]
    condition = edge.condition
    if condition:
        path = condition.get("path")
        where = ".".join(str(p) for p in path) if isinstance(path, list) else "?"
        ops = [(k, v) for k, v in condition.items() if k != "path"]
        parts.append(
            " ".join(f"{where} {_OPERATORS.get(k, k)} {json.dumps(v)}" for k, v in ops) or where
        )
    if edge.recovery:
        parts.append(edge.recovery)
    return " · ".join(p for p in parts if p)


def _escape(text: str) -> str:
    return text.replace('"', "#quot;")
