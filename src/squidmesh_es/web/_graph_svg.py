"""A run's graph as an inline SVG picture, laid out on the server: no script draws it.

Steps are placed in columns by their distance from the entry steps (breadth first, so a
retry loop or a route back does not push its target right), in the order the graph lists
them. Colours follow the node and edge statuses; the current step gets a thick outline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from markupsafe import Markup, escape

from squidmesh_es.read_model import EdgeStatus, NodeStatus, RunGraph

__all__ = ["graph_svg"]

_WIDTH, _HEIGHT = 150, 46
_GAP_X, _GAP_Y = 70, 26
_PAD = 16

NODE_COLOURS: dict[str, tuple[str, str]] = {
    NodeStatus.WAITING: ("#f5f5f5", "#9e9e9e"),
    NodeStatus.PENDING: ("#fff8e1", "#f9a825"),
    NodeStatus.DEFERRED: ("#ede7f6", "#7e57c2"),
    NodeStatus.RUNNING: ("#e3f2fd", "#1e88e5"),
    NodeStatus.RETRYING: ("#fff3e0", "#fb8c00"),
    NodeStatus.PAUSED: ("#fce4ec", "#d81b60"),
    NodeStatus.COMPLETED: ("#e8f5e9", "#43a047"),
    NodeStatus.FAILED: ("#ffebee", "#e53935"),
    NodeStatus.SKIPPED: ("#fafafa", "#bdbdbd"),
    NodeStatus.RECORDED: ("#e0f7fa", "#00acc1"),
    "end": ("#eceff1", "#546e7a"),
}
"""Fill and stroke per node status (the colours ``squidmesh graph`` gives Mermaid)."""

_EDGE_COLOURS: dict[EdgeStatus, str] = {
    EdgeStatus.SELECTED: "#43a047",
    EdgeStatus.PENDING: "#f9a825",
    EdgeStatus.SKIPPED: "#bdbdbd",
    EdgeStatus.BLOCKED: "#e53935",
}


@dataclass(frozen=True)
class _Box:
    id: str
    status: str
    current: bool
    x: int
    y: int


def graph_svg(graph: RunGraph) -> Markup:
    """``graph`` as an ``<svg>`` element, each node a ``<g class="node" data-node=...>``."""
    names = [n.id for n in graph.nodes]
    extra = sorted({e.to for e in graph.edges} - set(names))  # ``complete`` and the like
    ordered = names + extra
    column = _columns(ordered, [(e.from_step, e.to) for e in graph.edges])
    rows: dict[int, int] = {}
    boxes: dict[str, _Box] = {}
    statuses = {n.id: (n.status.value, n.current) for n in graph.nodes}
    for name in ordered:
        col = column[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        status, current = statuses.get(name, ("end", False))
        boxes[name] = _Box(
            name,
            status,
            current,
            _PAD + col * (_WIDTH + _GAP_X),
            _PAD + row * (_HEIGHT + _GAP_Y),
        )
    width = _PAD * 2 + (max(column.values(), default=0) + 1) * (_WIDTH + _GAP_X) - _GAP_X
    height = _PAD * 2 + max(rows.values(), default=1) * (_HEIGHT + _GAP_Y) - _GAP_Y + 30
    parts = [
        f'<svg class="run-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="graph of run {escape(graph.run_id)}">',
        "<defs>",
        *(
            f'<marker id="arrow-{s.value}" viewBox="0 0 10 10" refX="10" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{c}"/></marker>'
            for s, c in _EDGE_COLOURS.items()
        ),
        "</defs>",
    ]
    for edge in graph.edges:
        source, target = boxes[edge.from_step], boxes[edge.to]
        parts.append(_edge(source, target, edge.status, edge.outcome))
    for box in boxes.values():
        parts.append(_node(box))
    parts.append("</svg>")
    return Markup("".join(parts))


def _columns(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Breadth-first distance from the steps nothing leads to (the first step if all are)."""
    targets = {to for _, to in edges}
    roots = [n for n in names if n not in targets] or names[:1]
    following: dict[str, list[str]] = {}
    for source, to in edges:
        following.setdefault(source, []).append(to)
    column = dict.fromkeys(roots, 0)
    pending = deque(roots)
    while pending:
        name = pending.popleft()
        for to in following.get(name, []):
            if to not in column:
                column[to] = column[name] + 1
                pending.append(to)
    for name in names:  # unreachable steps (dynamic work, say) go in the first column
        column.setdefault(name, 0)
    return column


def _node(box: _Box) -> str:
    fill, stroke = NODE_COLOURS.get(box.status, NODE_COLOURS["end"])
    width = 3.5 if box.current else 1.5
    dash = ' stroke-dasharray="4 3"' if box.status == NodeStatus.SKIPPED else ""
    label = box.id if len(box.id) <= 20 else box.id[:19] + "…"
    current = " current" if box.current else ""
    return (
        f'<g class="node status-{escape(box.status)}{current}" data-node="{escape(box.id)}" '
        f'data-status="{escape(box.status)}"><title>{escape(box.id)}: {escape(box.status)}'
        f"{' (current step)' if box.current else ''}</title>"
        f'<rect x="{box.x}" y="{box.y}" width="{_WIDTH}" height="{_HEIGHT}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{box.x + _WIDTH // 2}" y="{box.y + 19}" text-anchor="middle" '
        f'class="node-name">{escape(label)}</text>'
        f'<text x="{box.x + _WIDTH // 2}" y="{box.y + 36}" text-anchor="middle" '
        f'class="node-status">{escape(box.status)}{" ◀ current" if box.current else ""}</text>'
        "</g>"
    )


def _edge(source: _Box, target: _Box, status: EdgeStatus, outcome: str | None) -> str:
    colour = _EDGE_COLOURS[status]
    x1, y1 = source.x + _WIDTH, source.y + _HEIGHT // 2
    x2, y2 = target.x, target.y + _HEIGHT // 2
    if x2 > x1:  # forward: a gentle S curve
        bend = (x2 - x1) // 2
        path = f"M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}"
        label_x, label_y = (x1 + x2) // 2, (y1 + y2) // 2 - 4
    else:  # back or sideways: loop under the boxes
        x1, y1 = source.x + _WIDTH // 2, source.y + _HEIGHT
        x2, y2 = target.x + _WIDTH // 2, target.y + _HEIGHT
        low = max(y1, y2) + 28
        path = f"M {x1} {y1} C {x1} {low}, {x2} {low}, {x2} {y2}"
        label_x, label_y = (x1 + x2) // 2, low - 2
    width = 2.5 if status is EdgeStatus.SELECTED else 1.5
    dash = ' stroke-dasharray="4 3"' if status is EdgeStatus.SKIPPED else ""
    label = (
        f'<text x="{label_x}" y="{label_y}" text-anchor="middle" class="edge-label">'
        f"{escape(outcome)}</text>"
        if outcome and outcome != "ok"
        else ""
    )
    return (
        f'<g class="edge edge-{status.value}"><path d="{path}" fill="none" stroke="{colour}" '
        f'stroke-width="{width}"{dash} marker-end="url(#arrow-{status.value})"/>{label}</g>'
    )
