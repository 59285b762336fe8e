"""The personal-data paths: what sealing and forgetting touch, and that nothing else moves."""

from __future__ import annotations

from typing import Any

from squidmesh_es.domain import WorkflowRun
from squidmesh_es.domain._personal import PERSONAL_EVENT_FIELDS, map_paths
from squidmesh_es.redaction import ERASED, erased


def test_only_the_named_fields_change_and_the_original_is_left_alone() -> None:
    state: dict[str, Any] = {
        "input": {"email": "a@b.c"},
        "planned": {"k1": {"step": "s", "input_from": {"applied": 0}}, "k2": {"input": {"x": 1}}},
        "applied": {"k1": {"result": {"y": 2}, "error": {"code": "e"}}},
        "dynamic_work": [{"nodes": [{"id": "n", "input": {"z": 3}}], "metadata": None}],
        "workflow": "W",
    }
    paths = PERSONAL_EVENT_FIELDS[WorkflowRun.Snapshot.TOPIC]

    out = map_paths({"state": state}, paths, erased)["state"]

    assert out["input"] == {"email": ERASED}
    assert out["planned"]["k1"] is state["planned"]["k1"]  # a reference: nothing to erase
    assert out["planned"]["k2"]["input"] == {"x": ERASED}
    assert out["applied"]["k1"] == {"result": {"y": ERASED}, "error": {"code": "e"}}
    assert out["dynamic_work"][0]["nodes"][0] == {"id": "n", "input": {"z": ERASED}}
    assert out["dynamic_work"][0]["metadata"] is None and out["workflow"] == "W"
    assert state["input"] == {"email": "a@b.c"}  # copy-on-write


def test_an_unchanged_value_comes_back_as_the_same_object() -> None:
    event = {"runnables": [{"runnable_key": "k", "input_from": {"applied": 1}}]}
    paths = PERSONAL_EVENT_FIELDS[WorkflowRun.RunnablesPlanned.TOPIC]

    assert map_paths(event, paths, lambda value: value) is event
    assert map_paths(event, paths, erased) is event  # no carried input: nothing to touch


def test_every_run_event_with_personal_fields_is_a_real_topic() -> None:
    topics = {
        getattr(value, "TOPIC", None)
        for value in vars(WorkflowRun).values()
        if isinstance(value, type)
    }
    assert set(PERSONAL_EVENT_FIELDS) <= topics
