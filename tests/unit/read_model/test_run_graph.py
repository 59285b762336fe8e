from __future__ import annotations

import json
from datetime import timedelta

from read_model_builders import (
    LATER,
    LEASE,
    SAGA_POLICY,
    T0,
    Harness,
    chain_spec,
    dependency_spec,
    saga_spec,
    transition_spec,
)

from squidmesh_es.domain import ManualKind, Runnable, TerminalStatus
from squidmesh_es.read_model import EdgeStatus, NodeStatus, RunGraph, build_run_graph


def _graph(h: Harness, now=T0, include_history: bool = False) -> RunGraph:  # type: ignore[no-untyped-def]
    snapshot = h.snapshot(now, include_history=include_history)
    return build_run_graph(snapshot, h.spec, include_history=include_history)


def _nodes(graph: RunGraph) -> dict[str, NodeStatus]:
    return {node.id: node.status for node in graph.nodes}


def _edges(graph: RunGraph) -> dict[str, EdgeStatus]:
    return {edge.id: edge.status for edge in graph.edges}


def test_fresh_run_has_waiting_nodes_and_pending_edges_in_spec_order() -> None:
    graph = _graph(Harness(transition_spec()))

    assert list(_nodes(graph)) == ["load", "check", "notify", "credit"]
    assert set(_nodes(graph).values()) == {NodeStatus.WAITING}
    assert list(_edges(graph)) == [
        "load:ok:check",
        "check:ok:notify",
        "check:error:credit",
        "notify:ok:complete",
        "credit:ok:complete",
    ]
    assert set(_edges(graph).values()) == {EdgeStatus.PENDING}
    assert graph.current_node_id is None and graph.source == "read_model"


def test_taken_route_is_selected_and_the_next_step_is_current() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.dispatch("check")

    graph = _graph(h)

    assert _nodes(graph)["load"] is NodeStatus.COMPLETED
    assert _nodes(graph)["check"] is NodeStatus.PENDING
    assert _edges(graph)["load:ok:check"] is EdgeStatus.SELECTED
    assert _edges(graph)["check:ok:notify"] is EdgeStatus.PENDING
    assert graph.current_node_id == "check" and graph.current_node_ids == ["check"]
    load = next(n for n in graph.nodes if n.id == "load")
    assert load.transition is not None and load.transition["edge_id"] == "load:ok:check"


def test_error_route_selects_its_edge_skips_the_sibling_and_its_target() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    key = h.dispatch("check")
    h.claim(key)
    h.complete(key)
    h.apply(
        key,
        outcome="error",
        error={"code": "declined"},
        transition={
            "from": "check",
            "on": "error",
            "to": "credit",
            "recovery": "compensation",
            "edge_id": "check:error:credit",
        },
    )
    h.dispatch("credit")

    graph = _graph(h)

    assert _edges(graph)["check:error:credit"] is EdgeStatus.SELECTED
    assert _edges(graph)["check:ok:notify"] is EdgeStatus.SKIPPED
    assert _nodes(graph)["check"] is NodeStatus.FAILED
    assert _nodes(graph)["notify"] is NodeStatus.SKIPPED
    assert _nodes(graph)["credit"] is NodeStatus.PENDING


def test_claimed_step_is_running() -> None:
    h = Harness(transition_spec())
    h.claim(h.dispatch("load"))

    assert _nodes(_graph(h))["load"] is NodeStatus.RUNNING


def test_step_with_a_scheduled_retry_is_retrying() -> None:
    h = Harness(transition_spec())
    key = h.dispatch("load")
    h.claim(key)
    h.fail_with_retry(key, retry_at=LATER)

    graph = _graph(h)

    assert _nodes(graph)["load"] is NodeStatus.RETRYING
    assert _edges(graph)["load:ok:check"] is EdgeStatus.PENDING


def test_deferred_continuation_is_deferred_until_visible() -> None:
    h = Harness(transition_spec())
    h.dispatch("load", at=LATER, deferred={"reason": "rate_limited"})

    assert _nodes(_graph(h))["load"] is NodeStatus.DEFERRED
    assert _nodes(_graph(h, LATER))["load"] is NodeStatus.PENDING


def test_a_deferred_step_keeps_its_routes_pending_until_its_continuation_decides() -> None:
    h = Harness(transition_spec())
    key = h.dispatch("load")
    h.claim(key)
    h.complete(key)
    continuation = f"{key}:deferred:1"
    h.apply(
        key,
        outcome="deferred",
        error={"code": "deferred"},
        transition={"deferred_runnable_key": continuation, "visible_at": LATER.isoformat()},
    )
    h.run.plan([Runnable.from_state({**h.run.planned[key], "runnable_key": continuation})], now=T0)
    h.schedule(continuation)

    graph = _graph(h)

    load = next(n for n in graph.nodes if n.id == "load")
    assert load.status is NodeStatus.PENDING and load.transition is None
    assert _edges(graph)["load:ok:check"] is EdgeStatus.PENDING


def test_manual_step_is_paused() -> None:
    h = Harness(transition_spec())
    h.run.pause("check", kind=ManualKind.PAUSE, now=T0)

    graph = _graph(h)

    assert _nodes(graph)["check"] is NodeStatus.PAUSED and graph.current_node_id == "check"


def test_terminal_run_skips_unreached_steps_and_unresolved_edges() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    key = h.dispatch("check")
    h.claim(key)
    h.complete(key)
    h.apply(key, outcome="error", error={"code": "declined"})
    h.run.end(TerminalStatus.FAILED, now=T0, error={"code": "declined", "step": "check"})

    graph = _graph(h)

    assert _nodes(graph) == {
        "load": NodeStatus.COMPLETED,
        "check": NodeStatus.FAILED,
        "notify": NodeStatus.SKIPPED,
        "credit": NodeStatus.SKIPPED,
    }
    assert _edges(graph)["check:error:credit"] is EdgeStatus.SKIPPED
    assert graph.terminal and graph.current_node_ids == []


def test_dependency_edges_are_selected_pending_or_blocked_by_their_source() -> None:
    h = Harness(dependency_spec())
    h.step_ok("account", None)
    key = h.dispatch("invoice")
    h.claim(key)

    running = _edges(_graph(h))
    h.complete(key)
    h.apply(key, outcome="error", error={"code": "x"})
    after_failure = _graph(h)

    assert running["account:dependency:prepare"] is EdgeStatus.SELECTED
    assert running["invoice:dependency:prepare"] is EdgeStatus.PENDING
    assert _edges(after_failure)["invoice:dependency:prepare"] is EdgeStatus.BLOCKED
    assert _nodes(after_failure)["prepare"] is NodeStatus.WAITING


def test_without_a_definition_nodes_come_from_the_run_and_edges_are_empty() -> None:
    h = Harness()
    h.step_ok("load", None)
    h.dispatch("check")

    graph = build_run_graph(h.snapshot(), None)

    assert _nodes(graph) == {"load": NodeStatus.COMPLETED, "check": NodeStatus.PENDING}
    assert graph.edges == []


def test_steps_the_spec_does_not_declare_are_appended() -> None:
    h = Harness(transition_spec())
    h.dispatch("compensate:load")

    assert list(_nodes(_graph(h)))[-1] == "compensate:load"


def test_nodes_hide_payloads_unless_history_is_included() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check", result={"loaded": True})

    compact = next(n for n in _graph(h).nodes if n.id == "load")
    full = next(n for n in _graph(h, include_history=True).nodes if n.id == "load")

    assert compact.input is None and compact.output is None and compact.attempts == []
    assert full.input == {"invoice_id": "inv-1"} and full.output == {"loaded": True}
    assert len(full.attempts) == 1


def test_node_carries_its_open_deadline() -> None:
    h = Harness(transition_spec())
    h.dispatch("load", deadline={"due_at": T0 + timedelta(minutes=1)})

    load = next(n for n in _graph(h).nodes if n.id == "load")

    assert load.deadline is not None and load.deadline.due_at == T0 + timedelta(minutes=1)


def test_child_runs_become_links_and_stale_ones_are_dropped() -> None:
    h = Harness(transition_spec())
    for child_id, origin in (("child-1", {"step": "load"}), ("child-2", {})):
        h.run.record_child_run(
            child_run_id=child_id,
            child_workflow="sub",
            child_trigger="go",
            child_key=child_id,
            origin=origin,
            now=T0,
        )

    graph = _graph(h)

    (link,) = graph.child_links
    assert link["id"] == "load:child_run:child-1" and link["status"] == "linked"
    assert link["from"] == "load" and link["to"] == "child-1" and link["type"] == "child_run"
    assert len(graph.child_runs) == 2


def test_dynamic_work_adds_recorded_nodes_edges_and_an_overlay() -> None:
    h = Harness(transition_spec())
    h.run.record_dynamic_work(
        dynamic_key="extra",
        origin={"step": "load"},
        nodes=[{"id": "enrich"}],
        edges=[],
        now=T0,
    )

    graph = _graph(h)

    enrich = graph.nodes[-1]
    assert enrich.id == "enrich" and enrich.dynamic and enrich.status is NodeStatus.RECORDED
    assert _edges(graph)["load:dynamic:enrich"] is EdgeStatus.PENDING
    assert graph.dynamic_work_overlays == [
        {
            "dynamic_key": "extra",
            "status": "recorded",
            "origin_node_id": "load",
            "added_node_ids": ["enrich"],
            "added_edge_ids": ["load:dynamic:enrich"],
            "node_count": 1,
            "edge_count": 1,
        }
    ]


def test_to_map_uses_the_ui_keys_and_is_json_safe() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.claim(h.dispatch("check"))

    data = _graph(h, T0 + LEASE - timedelta(seconds=1)).to_map()

    assert json.loads(json.dumps(data)) == data
    assert data["terminal?"] is False and "terminal" not in data
    edge = data["edges"][0]  # type: ignore[index]
    assert edge["from"] == "load" and edge["selected?"] is True
    assert edge["skipped?"] is False and edge["pending?"] is False and edge["blocked?"] is False
    node = data["nodes"][1]  # type: ignore[index]
    assert node["id"] == "check" and node["current?"] is True and node["dynamic?"] is False
    assert node["status"] == "running"


def test_plain_keys_drop_the_question_marks_and_change_nothing_else() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.claim(h.dispatch("check"))
    graph = _graph(h, T0 + LEASE - timedelta(seconds=1))

    spec, plain = graph.to_map(), graph.to_map(plain_keys=True)

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k.removesuffix("?"): strip(v) for k, v in value.items()}
        return [strip(v) for v in value] if isinstance(value, list) else value

    assert plain == strip(spec)
    assert plain["terminal"] is False
    assert plain["edges"][0]["selected"] is True  # type: ignore[index]
    assert plain["nodes"][1]["current"] is True  # type: ignore[index]


def test_skipping_carries_down_a_route_not_taken() -> None:
    h = Harness(chain_spec())
    key = h.dispatch("a")
    h.claim(key)
    h.complete(key)
    h.apply(key, outcome="error", error={"code": "x"}, transition={"edge_id": "a:error:d"})
    h.dispatch("d")

    graph = _graph(h)

    assert _nodes(graph) == {
        "a": NodeStatus.FAILED,
        "b": NodeStatus.SKIPPED,
        "c": NodeStatus.SKIPPED,
        "d": NodeStatus.PENDING,
    }
    assert _edges(graph)["b:ok:c"] is EdgeStatus.SKIPPED
    assert _edges(graph)["d:ok:complete"] is EdgeStatus.PENDING


# -- compensation ----------------------------------------------------------------------------


def test_a_callback_is_a_node_tied_to_the_step_it_undoes_by_a_compensation_edge() -> None:
    h = Harness(saga_spec())
    h.rolling_back()

    graph = _graph(h)

    callback = next(n for n in graph.nodes if n.id == "compensate:authorize")
    assert callback.status is NodeStatus.PENDING and callback.current
    assert callback.compensates == "authorize" and not callback.dynamic
    assert [n.id for n in graph.nodes].count("compensate:authorize") == 1
    edge = next(e for e in graph.edges if e.type == "compensation")
    assert (edge.id, edge.from_step, edge.to) == (
        "authorize:compensation:compensate:authorize",
        "authorize",
        "compensate:authorize",
    )
    assert edge.status is EdgeStatus.SELECTED
    assert graph.current_node_ids == ["compensate:authorize"]


def test_steps_a_rollback_will_never_reach_are_skipped_while_it_runs() -> None:
    h = Harness(saga_spec())
    h.saga_forward("reserve")
    h.step_failed("authorize", recovery=SAGA_POLICY["authorize"])
    h.compensate("reserve", "authorize")

    graph = _graph(h)

    assert not graph.terminal
    assert _nodes(graph) == {
        "reserve": NodeStatus.COMPLETED,
        "authorize": NodeStatus.FAILED,
        "notify": NodeStatus.SKIPPED,
        "capture": NodeStatus.SKIPPED,
        "compensate:reserve": NodeStatus.PENDING,
    }
    assert _edges(graph)["notify:ok:capture"] is EdgeStatus.SKIPPED


def test_finished_callbacks_show_their_own_outcome_once_the_run_failed() -> None:
    h = Harness(saga_spec())
    h.callback(h.rolling_back())
    h.callback(h.compensate("reserve", "capture"), outcome="error")
    h.run.end(TerminalStatus.FAILED, now=T0, error={"code": "step_failed"})

    graph = _graph(h)

    assert _nodes(graph)["compensate:authorize"] is NodeStatus.COMPLETED
    assert _nodes(graph)["compensate:reserve"] is NodeStatus.FAILED
    assert _nodes(graph)["authorize"] is NodeStatus.COMPLETED
    assert [e.id for e in graph.edges if e.type == "compensation"] == [
        "authorize:compensation:compensate:authorize",
        "reserve:compensation:compensate:reserve",
    ]


def test_without_a_definition_a_callback_still_names_the_step_it_undoes() -> None:
    h = Harness(saga_spec())
    h.rolling_back()

    graph = build_run_graph(h.snapshot(), None)

    callback = next(n for n in graph.nodes if n.id == "compensate:authorize")
    assert callback.compensates == "authorize" and graph.edges == []


# -- dynamic work ----------------------------------------------------------------------------


def test_a_scheduled_dynamic_node_appears_once_with_the_status_of_its_runnable() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    (key,) = h.schedule_dynamic("deliver:chat_1")

    pending = _graph(h)
    h.claim(key)
    running = _graph(h)
    h.complete(key)
    h.apply(key)
    done = _graph(h)

    assert [n.id for n in pending.nodes].count("deliver:chat_1") == 1
    node = next(n for n in pending.nodes if n.id == "deliver:chat_1")
    assert node.dynamic and node.status is NodeStatus.PENDING and node.current
    assert node.dynamic_key == "fanout" and node.action == "chat.deliver"
    assert node.origin == {"runnable_key": f"{h.run.id}:load:1", "step": "load", "attempt": 1}
    assert node.metadata == {"team": "ops", "n": "deliver:chat_1"}
    assert _nodes(running)["deliver:chat_1"] is NodeStatus.RUNNING
    assert _nodes(done)["deliver:chat_1"] is NodeStatus.COMPLETED
    assert _edges(pending)["load:dynamic:deliver:chat_1"] is EdgeStatus.SELECTED


def test_the_overlay_of_scheduled_work_says_scheduled() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.schedule_dynamic("a", "b", edges=[{"id": "a:then:b", "from": "a", "to": "b"}])

    (overlay,) = _graph(h).dynamic_work_overlays

    assert overlay == {
        "dynamic_key": "fanout",
        "status": "scheduled",
        "origin_node_id": "load",
        "added_node_ids": ["a", "b"],
        "added_edge_ids": ["a:then:b", "load:dynamic:a", "load:dynamic:b"],
        "node_count": 2,
        "edge_count": 3,
    }


def test_declared_dynamic_edges_join_the_implied_ones_without_repeating_an_id() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    keys = h.schedule_dynamic(
        "a", "b", edges=[{"from": "a", "to": "b"}, {"from": "load", "to": "a"}]
    )
    h.claim(keys[0])
    h.complete(keys[0])
    h.apply(keys[0], outcome="error", error={"code": "x"})

    graph = _graph(h)

    dynamic = [(e.id, e.status) for e in graph.edges if e.type == "dynamic"]
    assert dynamic == [
        ("a:dynamic:b", EdgeStatus.BLOCKED),
        ("load:dynamic:a", EdgeStatus.SELECTED),
        ("load:dynamic:b", EdgeStatus.SELECTED),
    ]
    assert graph.dynamic_work_overlays[0]["edge_count"] == 3


def test_recorded_nodes_stay_recorded_beside_scheduled_ones() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.run.record_dynamic_work(
        dynamic_key="ideas",
        origin={"runnable_key": f"{h.run.id}:load:1", "step": "load", "attempt": 1},
        nodes=[{"id": "maybe", "input": {"chat": "x"}}],
        edges=[],
        now=T0,
    )
    h.schedule_dynamic("deliver:chat_1")

    graph = _graph(h, include_history=True)

    assert _nodes(graph)["maybe"] is NodeStatus.RECORDED
    assert _nodes(graph)["deliver:chat_1"] is NodeStatus.PENDING
    assert [o["status"] for o in graph.dynamic_work_overlays] == ["recorded", "scheduled"]
    maybe = next(n for n in graph.nodes if n.id == "maybe")
    assert maybe.input == {"chat": "x"} and maybe.dynamic_key == "ideas"
    assert _edges(graph)["load:dynamic:maybe"] is EdgeStatus.PENDING


def test_edges_of_recorded_work_are_skipped_once_the_run_ended() -> None:
    h = Harness(transition_spec())
    h.run.record_dynamic_work(
        dynamic_key="extra", origin={"step": "load"}, nodes=[{"id": "enrich"}], edges=[], now=T0
    )
    h.run.end(TerminalStatus.CANCELLED, now=T0)

    graph = _graph(h)

    assert _nodes(graph)["enrich"] is NodeStatus.RECORDED
    assert _edges(graph)["load:dynamic:enrich"] is EdgeStatus.SKIPPED


def test_to_map_marks_dynamic_and_compensation_nodes() -> None:
    h = Harness(transition_spec())
    h.step_ok("load", "load:ok:check")
    h.schedule_dynamic("deliver:chat_1")

    data = _graph(h).to_map()

    node = next(n for n in data["nodes"] if n["id"] == "deliver:chat_1")  # type: ignore[union-attr,index]
    assert node["dynamic?"] is True and node["compensates"] is None
    assert json.loads(json.dumps(data)) == data
