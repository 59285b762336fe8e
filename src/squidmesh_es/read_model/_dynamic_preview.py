"""The dynamic-work preview: what a proposal would add to a run, computed without writing."""

from __future__ import annotations

from squidmesh_es.read_model._json import JsonMap, ReadModel, to_json_map

__all__ = ["DynamicWorkPreview"]


class DynamicWorkPreview(ReadModel):
    """A validated proposal and its graph impact; the top-level fields are authoritative.

    An exact duplicate of recorded work is still a valid preview: ``duplicate`` is true,
    ``recordable`` false, nothing is added and ``warnings`` says ``duplicate_dynamic_work``.
    """

    run_id: str
    duplicate: bool
    recordable: bool
    origin_node_id: str
    added_node_ids: list[str]
    added_edge_ids: list[str]
    warnings: list[str]
    dynamic_work: JsonMap
    """The normalized proposal as the journal would record it (metadata redacted)."""
    graph: JsonMap
    """The run graph with the proposal overlaid, in `RunGraph.to_map` form."""

    def to_map(self) -> JsonMap:
        """The preview in the spec's UI shape (``duplicate?``, ``recordable?``)."""
        data = to_json_map(self.model_dump(mode="json"))
        data["duplicate?"] = data.pop("duplicate")
        data["recordable?"] = data.pop("recordable")
        return data
