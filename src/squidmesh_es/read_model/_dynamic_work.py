"""Dynamic-work records as the graph reads them: nodes, edges and overlays per record.

A record is what ``DynamicWorkRecorded`` stored (or what a preview overlays): its key, status
(``recorded`` or ``scheduled``), origin, nodes and declared edges. Records are read
defensively, since stale facts or a foreign writer's must still draw: nodes without an id
and edges without both ends are left out, and a missing status reads as ``recorded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from squidmesh_es.read_model._json import JsonMap, to_json_map
from squidmesh_es.read_model._snapshot import RunnableView

__all__ = ["DynamicNode", "DynamicRecord", "DynamicWork", "planned_dynamic_node"]


def _text(value: JsonValue) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class DynamicRecord:
    """One dynamic-work record."""

    dynamic_key: str | None
    status: str
    origin: JsonMap | None
    origin_id: str | None
    """The node the work hangs from: the origin's step."""
    nodes: list[JsonMap]
    """The proposed nodes, each with a string ``id``."""
    edges: list[tuple[str, str, str]]
    """``(id, from, to)``: the edges the proposal declared, then one implied edge from the
    origin to each node, ``<origin>:dynamic:<node>``, unless a declared edge has that id."""
    metadata: JsonMap

    @classmethod
    def read(cls, work: JsonMap) -> DynamicRecord:
        """The record ``work`` describes (an entry of `RunSnapshot.dynamic_work`)."""
        origin = work.get("origin")
        origin_map = origin if isinstance(origin, dict) else None
        origin_id = None
        if origin_map is not None:
            origin_id = _text(origin_map.get("step", origin_map.get("node_id")))
        raw_nodes = work.get("nodes")
        nodes: list[JsonMap] = []
        for raw in raw_nodes if isinstance(raw_nodes, list) else []:
            if isinstance(raw, dict):
                node_id = _text(raw.get("id", raw.get("node_id")))
                if node_id is not None:
                    nodes.append({**raw, "id": node_id})
        raw_edges = work.get("edges")
        edges: list[tuple[str, str, str]] = []
        for raw in raw_edges if isinstance(raw_edges, list) else []:
            if not isinstance(raw, dict):
                continue
            source, target = _text(raw.get("from")), _text(raw.get("to"))
            if source is not None and target is not None:
                edge_id = _text(raw.get("id")) or f"{source}:dynamic:{target}"
                edges.append((edge_id, source, target))
        if origin_id is not None:
            taken = {edge_id for edge_id, _, _ in edges}
            for node in nodes:
                implied = f"{origin_id}:dynamic:{node['id']}"
                if implied not in taken:
                    edges.append((implied, origin_id, str(node["id"])))
        status = work.get("status")
        return cls(
            dynamic_key=_text(work.get("dynamic_key")),
            status=status if isinstance(status, str) else "recorded",
            origin=origin_map,
            origin_id=origin_id,
            nodes=nodes,
            edges=edges,
            metadata=to_json_map(work.get("metadata")),
        )

    @property
    def scheduled(self) -> bool:
        """Whether the work was scheduled (its nodes run), not only recorded."""
        return self.status == "scheduled"

    def overlay(self) -> JsonMap:
        """The record's overlay in the graph-inspection shape (guide 4.4)."""
        node_ids: list[JsonValue] = [node["id"] for node in self.nodes]
        edge_ids: list[JsonValue] = [edge_id for edge_id, _, _ in self.edges]
        return {
            "dynamic_key": self.dynamic_key,
            "status": self.status,
            "origin_node_id": self.origin_id,
            "added_node_ids": node_ids,
            "added_edge_ids": edge_ids,
            "node_count": len(node_ids),
            "edge_count": len(edge_ids),
        }


@dataclass(frozen=True)
class DynamicNode:
    """A dynamic node as its record describes it."""

    record: DynamicRecord
    raw: JsonMap

    @property
    def id(self) -> str:
        """The node id (validated unique against the run's steps and other nodes)."""
        return str(self.raw["id"])

    def node_fields(self) -> JsonMap:
        """The graph-node fields every dynamic node carries, scheduled or only recorded.

        ``metadata`` is the proposal's with the node's own on top, both redacted on write.
        """
        return {
            "dynamic": True,
            "dynamic_key": self.record.dynamic_key,
            "origin": self.record.origin,
            "metadata": {**self.record.metadata, **to_json_map(self.raw.get("metadata"))},
        }


class DynamicWork:
    """A run's dynamic-work records, and their nodes by id (the first record naming one wins)."""

    def __init__(self, records: Sequence[JsonMap]) -> None:
        self.records = [DynamicRecord.read(work) for work in records]
        self._nodes: dict[str, DynamicNode] = {}
        for record in self.records:
            for raw in record.nodes:
                node = DynamicNode(record, raw)
                self._nodes.setdefault(node.id, node)

    @property
    def nodes(self) -> list[DynamicNode]:
        """Every dynamic node, in recording order."""
        return list(self._nodes.values())

    def node(self, node_id: str) -> DynamicNode | None:
        """The record's view of ``node_id``, if a record names it."""
        return self._nodes.get(node_id)


def planned_dynamic_node(name: str, planned: Sequence[RunnableView]) -> DynamicNode | None:
    """A scheduled dynamic node known only from its runnable (its record is missing)."""
    dynamic = next((p.dynamic for p in planned if p.dynamic is not None), None)
    if dynamic is None:
        return None
    record = DynamicRecord.read(
        {
            "dynamic_key": dynamic.get("dynamic_key"),
            "origin": dynamic.get("origin"),
            "status": "scheduled",
        }
    )
    return DynamicNode(record, {"id": name})
