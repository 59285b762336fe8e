"""The editor boundary: JSON maps a visual editor loads, checks, previews and compares.

Data only: nothing here starts a run, imports code named in the map, or resolves an action
key to a class (a registry is consulted only to say whether a key is allowed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from squidmesh_es.errors import Issue, WorkflowValidationError
from squidmesh_es.workflow._dsl import Workflow
from squidmesh_es.workflow._json import JSONObject, JSONValue, json_equal
from squidmesh_es.workflow._registry import ActionRegistry
from squidmesh_es.workflow._spec import WorkflowSpec
from squidmesh_es.workflow._validation import spec_issues

RUNTIME_OWNED_FIELDS: Final = (
    "run_id",
    "status",
    "terminal_status",
    "current_node_id",
    "current_node_ids",
    "definition_fingerprint",
    "fingerprint",
    "spec_fingerprint",
    "journal",
    "audit_history",
    "attempts",
    "dispatches",
    "history",
)
"""Fields the runtime owns; an editor map that carries one is refused."""

EditorSource = WorkflowSpec | type[Workflow] | Mapping[str, object]
"""What the editor functions accept: a spec, a workflow class, or an editor map."""


class EditorSpec:
    """Round trips of workflow specs through visual editors, as JSON-safe maps.

    The editor map is the spec's `to_dict` form: string keys, JSON values, editor-owned
    fields only (workflow, version, triggers, payload, steps, transitions and the entry
    fields).
    """

    @staticmethod
    def to_map(spec: WorkflowSpec | type[Workflow]) -> JSONObject:
        """The editor map of `spec` (or of a workflow class's spec)."""
        return _spec(spec).to_dict()

    @staticmethod
    def validate_map(value: object, *, action_registry: ActionRegistry | None = None) -> None:
        """Check an editor map as submitted by an editor; return quietly when it is valid.

        Refuses runtime-owned fields (``run_id``, ``status``, fingerprints, ``attempts``...)
        with code ``invalid_editor_spec``, then applies every spec rule. With an
        `action_registry`, action keys must be allowed.

        Raises:
            WorkflowValidationError: one issue per problem, with paths into the map.
        """
        _read(value, action_registry)

    @staticmethod
    def preview_graph(
        value: EditorSource,
        *,
        action_registry: ActionRegistry | None = None,
        plain_keys: bool = False,
    ) -> JSONObject:
        """The draft graph of a valid map, in the graph-inspection shape.

        Nodes have status ``draft``; edges have the inspection ids (``a:ok:b``,
        ``a:ok:b:condition:0``, ``a:dependency:b``) and status ``pending``. The flags carry
        the spec's names (``terminal?``, ``current?``, ``selected?``...); with
        ``plain_keys``, the same names without ``?``, as ``RunGraph.to_map`` gives them.

        Raises:
            WorkflowValidationError: the map is invalid.
        """
        spec = _read(value, action_registry)
        graph: JSONObject = {
            "source": "workflow_spec",
            "status": "draft",
            "workflow": spec.workflow,
            "definition_version": spec.version,
            "current_node_id": None,
            "current_node_ids": [],
            "terminal?": False,
            "nodes": [_node(spec, name) for name in spec.step_names],
            "edges": [{**edge.to_dict(), **_PENDING} for edge in spec.edges()],
        }
        return _plain(graph) if plain_keys else graph

    @staticmethod
    def diff(
        source: EditorSource,
        draft: EditorSource,
        *,
        action_registry: ActionRegistry | None = None,
    ) -> JSONObject:
        """What `draft` changes in `source`: added, removed and changed nodes and edges.

        Nodes are compared by their whole step definition, edges by id and content;
        ``changed.fields`` lists the top-level fields (version, triggers...) that differ.

        Raises:
            WorkflowValidationError: either side is invalid.
        """
        before, after = _read(source, action_registry), _read(draft, action_registry)
        nodes = _changes(
            {s.name: s.to_dict() for s in before.steps}, {s.name: s.to_dict() for s in after.steps}
        )
        edges = _changes(
            {e.id: e.to_dict() for e in before.edges()}, {e.id: e.to_dict() for e in after.edges()}
        )
        old, new = before.to_dict(), after.to_dict()
        fields: list[JSONValue] = [
            key
            for key in ("workflow", "version", "triggers", "payload")
            if not json_equal(old[key], new[key])
        ]
        return {
            "added": {"nodes": nodes["added"], "edges": edges["added"]},
            "removed": {"nodes": nodes["removed"], "edges": edges["removed"]},
            "changed": {"nodes": nodes["changed"], "edges": edges["changed"], "fields": fields},
        }


_PENDING: Final[JSONObject] = {
    "status": "pending",
    "selected?": False,
    "skipped?": False,
    "pending?": True,
    "blocked?": False,
}


def _plain(graph: JSONObject) -> JSONObject:
    """The preview with its UI flags' ``?`` dropped; user data (conditions) is untouched."""

    def flags(item: JSONValue) -> JSONObject:
        assert isinstance(item, dict)
        return {key.removesuffix("?") if key in _FLAGS else key: v for key, v in item.items()}

    nodes, edges = graph["nodes"], graph["edges"]
    assert isinstance(nodes, list) and isinstance(edges, list)
    return {**flags(graph), "nodes": [flags(n) for n in nodes], "edges": [flags(e) for e in edges]}


_FLAGS: Final = frozenset(
    {"terminal?", "current?", "dynamic?", "selected?", "skipped?", "pending?", "blocked?"}
)


def _spec(value: WorkflowSpec | type[Workflow]) -> WorkflowSpec:
    return value if isinstance(value, WorkflowSpec) else value.to_spec()


def _read(value: object, registry: ActionRegistry | None) -> WorkflowSpec:
    if isinstance(value, WorkflowSpec) or (isinstance(value, type) and issubclass(value, Workflow)):
        spec = _spec(value)
        declared = isinstance(value, type)  # a class's references are its own code
        issues = spec_issues(spec, action_registry=registry, runtime_authored=not declared)
    elif not isinstance(value, Mapping):
        issues = [Issue((), "invalid_editor_spec", "an editor spec is a JSON object")]
        raise WorkflowValidationError("workflow editor spec is invalid", issues)
    else:
        issues = [
            Issue((key,), "invalid_editor_spec", f"{key} is runtime-owned and cannot be edited")
            for key in RUNTIME_OWNED_FIELDS
            if key in value
        ]
        data = {key: item for key, item in value.items() if key not in RUNTIME_OWNED_FIELDS}
        try:
            spec = WorkflowSpec.from_dict(data)
        except WorkflowValidationError as exc:
            raise WorkflowValidationError(
                "workflow editor spec is invalid", [*issues, *exc.issues]
            ) from None
        issues.extend(spec_issues(spec, action_registry=registry, runtime_authored=True))
    if issues:
        raise WorkflowValidationError("workflow editor spec is invalid", issues)
    return spec


def _node(spec: WorkflowSpec, name: str) -> JSONObject:
    return {
        "id": name,
        "action": spec.step(name).action,
        "status": "draft",
        "current?": False,
        "dynamic?": False,
        "input": None,
        "output": None,
        "error": None,
        "recovery": None,
        "transition": None,
        "manual_state": None,
        "attempts": [],
        "deadline": None,
        "metadata": {},
        "origin": None,
    }


def _changes(
    before: Mapping[str, JSONObject], after: Mapping[str, JSONObject]
) -> dict[str, list[JSONValue]]:
    return {
        "added": [key for key in after if key not in before],
        "removed": [key for key in before if key not in after],
        "changed": [
            key for key in after if key in before and not json_equal(before[key], after[key])
        ],
    }
