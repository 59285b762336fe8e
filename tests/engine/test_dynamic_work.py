"""Dynamic work on every backend: preview writes nothing, record is inspection-only, schedule
makes nodes runnable in one commit."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from squidmesh_es import SquidMesh
from squidmesh_es.errors import ActionNotAllowed, InvalidDynamicWork, RunTerminal, UnsafeReplay
from squidmesh_es.runtime._execution import Finished, Settled, claim_attempts, run_claimed, settle
from squidmesh_es.testing import ManualClock
from squidmesh_es.workflow import ActionEntry, ActionRegistry

from conftest import OpenMesh
from spec_actions import RAN, DigestFanout, deliver, digest_registry, fanout


@pytest.fixture(autouse=True)
def _fresh_ran() -> None:
    RAN.clear()


@pytest.fixture
def digest(open_mesh: OpenMesh) -> SquidMesh:
    return open_mesh(action_registry=digest_registry())


def origin_applied(mesh: SquidMesh) -> str:
    """Start a digest run and execute its origin step; the run then waits a minute."""
    run_id = mesh.start(DigestFanout, {}).run_id
    mesh.execute_next(owner_id="w")
    return run_id


def journal_size(mesh: SquidMesh) -> int:
    return len(list(mesh.recorder.select_notifications(start=1, limit=1000)))


def refused(mesh: SquidMesh, call: Any, reason: str) -> None:
    before = journal_size(mesh)
    with pytest.raises(InvalidDynamicWork) as raised:
        call()
    assert raised.value.code == "invalid_dynamic_work"
    assert raised.value.reason == reason
    assert journal_size(mesh) == before


def action_refused(mesh: SquidMesh, call: Any, reason: str) -> None:
    before = journal_size(mesh)
    with pytest.raises(ActionNotAllowed) as raised:
        call()
    assert raised.value.code == "action_not_allowed"
    assert raised.value.reason == reason
    assert journal_size(mesh) == before


# -- preview ------------------------------------------------------------------------------


def test_a_preview_shows_what_would_be_added_and_writes_nothing(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    before = journal_size(digest)

    preview = digest.preview_dynamic_work(run_id, fanout(run_id, deliver("chat_1")))

    assert journal_size(digest) == before
    shown = preview.to_map()
    assert shown["duplicate?"] is False and shown["recordable?"] is True
    assert shown["origin_node_id"] == "schedule_digest"
    assert shown["added_node_ids"] == ["deliver_digest:chat_1"]
    assert shown["added_edge_ids"] == ["schedule_digest:dynamic:deliver_digest:chat_1"]
    assert shown["warnings"] == []
    graph = preview.graph
    assert any(n["id"] == "deliver_digest:chat_1" and n["dynamic?"] for n in graph["nodes"])
    assert digest.inspect_run(run_id).dynamic_work == []


def test_an_exact_duplicate_preview_is_valid_but_adds_nothing(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    proposal = fanout(run_id, deliver("chat_1"))
    digest.record_dynamic_work(run_id, proposal)

    preview = digest.preview_dynamic_work(run_id, proposal)

    assert preview.duplicate is True
    assert preview.recordable is False
    assert preview.added_node_ids == [] and preview.added_edge_ids == []
    assert preview.warnings == ["duplicate_dynamic_work"]


# -- record -------------------------------------------------------------------------------


def test_recorded_work_is_visible_but_never_runs(digest: SquidMesh, clock: ManualClock) -> None:
    run_id = origin_applied(digest)

    snap = digest.record_dynamic_work(
        run_id,
        {**fanout(run_id, deliver("chat_1")), "metadata": {"api_key": "k-123", "team": "ops"}},
    )

    (work,) = snap.dynamic_work
    assert work["status"] == "recorded"
    assert work["reason"] == "runtime_fanout"
    assert work["metadata"] == {"api_key": "[REDACTED]", "team": "ops"}
    assert not any(r.dynamic for r in snap.planned_runnables)
    clock.advance(timedelta(minutes=1))
    digest.drain()
    assert RAN == ["schedule_digest", "summarize"]
    assert digest.inspect_run(run_id).terminal_status == "completed"


def test_recording_the_same_work_twice_writes_one_fact(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    proposal = fanout(run_id, deliver("chat_1"))
    digest.record_dynamic_work(run_id, proposal)
    version = digest.get_run(run_id).version

    again = digest.record_dynamic_work(run_id, proposal)

    assert len(again.dynamic_work) == 1
    assert digest.get_run(run_id).version == version


def test_other_contents_under_a_recorded_key_conflict(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    digest.record_dynamic_work(run_id, fanout(run_id, deliver("chat_1")))

    refused(
        digest,
        lambda: digest.record_dynamic_work(run_id, fanout(run_id, deliver("chat_9"))),
        "conflicting_dynamic_work",
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: {**p, "dynamic_key": ""}, "invalid_dynamic_key"),
        (lambda p: {**p, "origin": {**p["origin"], "attempt": 2}}, "invalid_dynamic_origin"),
        (lambda p: {**p, "origin": {**p["origin"], "step": "summarize"}}, "invalid_dynamic_origin"),
        (lambda p: {**p, "nodes": []}, "invalid_dynamic_node"),
        (lambda p: {**p, "nodes": [{"id": "summarize"}]}, "duplicate_dynamic_node"),
        (lambda p: {**p, "nodes": [{"id": "a"}, {"id": "a"}]}, "duplicate_dynamic_node"),
        (lambda p: {**p, "nodes": [{"id": "a", "colour": "red"}]}, "invalid_dynamic_node"),
        (
            lambda p: {**p, "nodes": [{"id": "a", "retry": {"max_attempts": 0}}]},
            "invalid_dynamic_node",
        ),
        (
            lambda p: {**p, "edges": [{"from": "a", "to": "nowhere"}], "nodes": [{"id": "a"}]},
            "invalid_dynamic_edge",
        ),
        (lambda p: {**p, "surprise": True}, "invalid_dynamic_work"),
        (
            lambda p: {
                **p,
                "edges": [{"id": "schedule_digest:ok:settle", "from": "a", "to": "summarize"}],
                "nodes": [{"id": "a"}],
            },
            "invalid_dynamic_edge",
        ),
    ],
)
def test_a_broken_proposal_is_refused_before_anything_is_written(
    digest: SquidMesh, change: Any, reason: str
) -> None:
    run_id = origin_applied(digest)
    proposal = change(fanout(run_id, deliver("chat_1")))

    refused(digest, lambda: digest.record_dynamic_work(run_id, proposal), reason)
    refused(digest, lambda: digest.preview_dynamic_work(run_id, proposal), reason)


def test_with_a_registry_every_node_must_name_an_allowed_action(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    proposal = fanout(run_id, deliver("chat_1", action="digest.unknown"))

    action_refused(
        digest,
        lambda: digest.record_dynamic_work(run_id, proposal, action_registry=digest_registry()),
        "unknown_action_key",
    )
    # Without a registry the same nodes are only inspection data, and are accepted.
    assert digest.record_dynamic_work(run_id, proposal).dynamic_work


def test_dynamic_work_naming_a_disabled_action_raises_action_not_allowed(
    digest: SquidMesh,
) -> None:
    run_id = origin_applied(digest)
    registry = ActionRegistry(
        {"digest.deliver": ActionEntry(digest_registry().resolve("digest.deliver"), False)}
    )
    proposal = fanout(run_id, deliver("chat_1"))

    action_refused(
        digest,
        lambda: digest.schedule_dynamic_work(run_id, proposal, action_registry=registry),
        "disabled_action_key",
    )
    with pytest.raises(ActionNotAllowed) as raised:
        digest.preview_dynamic_work(run_id, proposal, action_registry=registry)
    assert raised.value.action_key == "digest.deliver"


def test_an_ended_run_takes_no_dynamic_work(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    digest.cancel(run_id, actor="ops")

    with pytest.raises(RunTerminal):
        digest.record_dynamic_work(run_id, fanout(run_id, deliver("chat_1")))
    with pytest.raises(RunTerminal):
        digest.preview_dynamic_work(run_id, fanout(run_id, deliver("chat_1")))


# -- schedule -----------------------------------------------------------------------------


def test_scheduled_nodes_run_through_the_normal_claim_path(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)

    snap = digest.schedule_dynamic_work(
        run_id,
        fanout(run_id, deliver("chat_1"), deliver("chat_2")),
        action_registry=digest_registry(),
    )

    (work,) = snap.dynamic_work
    assert work["status"] == "scheduled"
    assert [a.step for a in snap.visible_attempts] == [
        "deliver_digest:chat_1",
        "deliver_digest:chat_2",
    ]
    dynamic = [r for r in snap.planned_runnables if r.dynamic]
    assert [r.action for r in dynamic] == ["digest.deliver", "digest.deliver"]
    assert dynamic[0].dynamic is not None
    assert dynamic[0].dynamic["dynamic_key"] == "digest_fanout"

    assert digest.drain() == 2
    after = digest.inspect_run(run_id)
    assert RAN == ["schedule_digest", "deliver:chat_1", "deliver:chat_2"]
    assert after.context["delivered_chat_1"] is True
    assert after.status == "running"  # the forward path still waits for its minute


class ErasableDigest(DigestFanout):
    erasable = True


def test_an_erasable_runs_dynamic_work_is_sealed_runs_and_can_be_forgotten(
    digest: SquidMesh,
) -> None:
    run_id = digest.start(ErasableDigest, {}).run_id
    digest.execute_next(owner_id="w")
    node = deliver("chat_1")
    node["input"]["note"] = "zq7secret"  # node ids and keys stay in clear: data goes in input
    proposal = {**fanout(run_id, node), "metadata": {"requested_by": "zq7secret"}}

    digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry())
    stored = digest.recorder.select_notifications(start=None, limit=1000)
    assert not any(b"zq7secret" in n.state for n in stored)
    assert digest.drain() == 1
    assert RAN == ["schedule_digest", "deliver:chat_1"]  # the node read its input

    forgotten = digest.forget_run(run_id)

    (work,) = forgotten.dynamic_work
    assert work["nodes"][0]["input"] == {"chat": "[ERASED]", "note": "[ERASED]"}
    assert work["metadata"] == {"requested_by": "[ERASED]"}
    graph = digest.inspect_run_graph(run_id, include_history=True).to_map()
    assert "zq7secret" not in str(graph) and "deliver_digest:chat_1" in str(graph)


def test_scheduling_the_same_work_twice_schedules_it_once(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    proposal = fanout(run_id, deliver("chat_1"))
    digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry())
    version = digest.get_run(run_id).version

    again = digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry())

    assert digest.get_run(run_id).version == version
    assert len(again.visible_attempts) == 1
    assert digest.drain() == 1


def test_scheduling_needs_a_registry_and_an_applied_origin(digest: SquidMesh) -> None:
    run_id = digest.start(DigestFanout, {}).run_id
    proposal = fanout(run_id, deliver("chat_1"))

    refused(
        digest,
        lambda: digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry()),
        "dynamic_origin_not_applied",
    )
    digest.execute_next(owner_id="w")
    refused(
        digest,
        lambda: digest.schedule_dynamic_work(run_id, proposal, action_registry=None),
        "missing_action_registry",
    )
    action_refused(
        digest,
        lambda: digest.schedule_dynamic_work(
            run_id, fanout(run_id, {"id": "n1"}), action_registry=digest_registry()
        ),
        "missing_action_key",
    )


def test_an_edge_id_of_earlier_work_cannot_be_reused(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    first = {
        **fanout(run_id, deliver("chat_1")),
        "edges": [{"id": "e1", "from": "schedule_digest", "to": "deliver_digest:chat_1"}],
    }
    digest.record_dynamic_work(run_id, first)
    second = {
        **fanout(run_id, deliver("chat_2"), key="more"),
        "edges": [{"id": "e1", "from": "schedule_digest", "to": "deliver_digest:chat_2"}],
    }

    refused(digest, lambda: digest.record_dynamic_work(run_id, second), "invalid_dynamic_edge")


def test_recorded_nodes_cannot_be_scheduled_afterwards(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    digest.record_dynamic_work(run_id, fanout(run_id, deliver("chat_1")))

    refused(
        digest,
        lambda: digest.schedule_dynamic_work(
            run_id,
            fanout(run_id, deliver("chat_1"), key="again"),
            action_registry=digest_registry(),
        ),
        "duplicate_dynamic_node",
    )


@pytest.mark.parametrize(
    "node_id",
    ["compensate:schedule_digest", "compensate:later", "deliver:1:deferred", "a:b:12:deferred"],
)
def test_node_ids_the_runtime_derives_for_its_own_runnables_are_refused(
    digest: SquidMesh, node_id: str
) -> None:
    # A node ``compensate:<step>`` would take the key of that step's compensation callback,
    # and ``<name>:<n>:deferred`` the key of a continuation of ``<name>``: the later plan
    # would conflict, its outcome be refused at every delivery, and the run never end.
    run_id = origin_applied(digest)
    proposal = fanout(run_id, {**deliver("chat_1"), "id": node_id})

    refused(digest, lambda: digest.preview_dynamic_work(run_id, proposal), "invalid_dynamic_node")
    refused(digest, lambda: digest.record_dynamic_work(run_id, proposal), "invalid_dynamic_node")
    refused(
        digest,
        lambda: digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry()),
        "invalid_dynamic_node",
    )


def test_a_node_id_merely_mentioning_the_reserved_words_is_allowed(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    nodes = [
        {**deliver("a"), "id": "deferred"},
        {**deliver("b"), "id": "recompensate:b"},
        {**deliver("c"), "id": "c:deferred:2"},
    ]

    digest.schedule_dynamic_work(run_id, fanout(run_id, *nodes), action_registry=digest_registry())

    assert digest.drain() == 3


@pytest.mark.parametrize("value", [("chat_1", "chat_2"), {"chat_1"}, float("nan"), b"chat"])
@pytest.mark.parametrize("where", ["input", "node metadata", "metadata"])
def test_input_and_metadata_that_json_would_not_bring_back_are_refused(
    digest: SquidMesh, value: object, where: str
) -> None:
    # A tuple came back as a list, so repeating the same proposal from another process
    # conflicted with its own record; a set failed the save with a serializer error.
    run_id = origin_applied(digest)
    if where == "metadata":
        proposal = {**fanout(run_id, deliver("chat_1")), "metadata": {"chats": value}}
    else:
        field = "input" if where == "input" else "metadata"
        proposal = fanout(run_id, {**deliver("chat_1"), field: {"chats": value}})

    refused(digest, lambda: digest.record_dynamic_work(run_id, proposal), "invalid_dynamic_work")
    refused(
        digest,
        lambda: digest.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry()),
        "invalid_dynamic_work",
    )


@pytest.mark.shared_journal
def test_the_same_proposal_from_another_runtime_is_a_duplicate(open_mesh: OpenMesh) -> None:
    first = open_mesh(action_registry=digest_registry())
    run_id = origin_applied(first)
    proposal = fanout(run_id, {**deliver("chat_1"), "input": {"chat": "chat_1", "ids": [1, 2]}})
    first.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry())
    version = first.get_run(run_id).version

    second = open_mesh(workflows=[DigestFanout], action_registry=digest_registry())
    second.schedule_dynamic_work(run_id, proposal, action_registry=digest_registry())

    assert second.get_run(run_id).version == version


def test_a_node_retries_within_its_own_max_attempts(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    node = deliver("chat_1", action="digest.flaky", retry={"max_attempts": 2})
    digest.schedule_dynamic_work(run_id, fanout(run_id, node), action_registry=digest_registry())

    digest.drain()

    snap = digest.inspect_run(run_id)
    assert RAN == ["schedule_digest", "flaky:1", "flaky:2"]
    assert snap.context["flaky_delivered"] is True
    assert f"{run_id}:deliver_digest:chat_1:2" in snap.applied_runnable_keys


def test_a_node_that_fails_for_good_fails_the_run(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    node = deliver("chat_1", action="digest.broken")
    digest.schedule_dynamic_work(run_id, fanout(run_id, node), action_registry=digest_registry())

    digest.drain()

    snap = digest.inspect_run(run_id)
    assert snap.terminal_status == "failed"
    assert snap.error is not None
    assert snap.error["step"] == "deliver_digest:chat_1"


def test_the_run_completes_only_after_its_scheduled_nodes(
    digest: SquidMesh, clock: ManualClock
) -> None:
    run_id = origin_applied(digest)
    node = deliver("chat_1", action="digest.slow")
    digest.schedule_dynamic_work(run_id, fanout(run_id, node), action_registry=digest_registry())
    digest.drain()  # the slow node defers for ten minutes

    clock.advance(timedelta(minutes=1))
    digest.drain()  # the forward path reaches its end
    assert RAN == ["schedule_digest", "slow", "summarize"]
    assert not digest.inspect_run(run_id).terminal

    clock.advance(timedelta(minutes=10))
    digest.drain()
    assert digest.inspect_run(run_id).terminal_status == "completed"


def test_a_run_with_completed_dynamic_nodes_needs_review_to_replay(digest: SquidMesh) -> None:
    run_id = origin_applied(digest)
    digest.schedule_dynamic_work(
        run_id, fanout(run_id, deliver("chat_1")), action_registry=digest_registry()
    )
    digest.drain()

    with pytest.raises(UnsafeReplay) as raised:
        digest.replay(run_id)
    assert raised.value.blocking_steps == ["deliver_digest:chat_1"]
    assert digest.replay(run_id, allow_irreversible=True).replayed_from_run_id == run_id


@pytest.mark.shared_journal
def test_only_workers_holding_the_action_claim_dynamic_nodes(open_mesh: OpenMesh) -> None:
    host = open_mesh(workflows=[DigestFanout])
    run_id = origin_applied(host)
    host.schedule_dynamic_work(
        run_id, fanout(run_id, deliver("chat_1")), action_registry=digest_registry()
    )

    assert host.execute_next(owner_id="no-actions") is None

    worker = open_mesh(workflows=[DigestFanout], action_registry=digest_registry())
    assert worker.drain() == 1
    assert RAN == ["schedule_digest", "deliver:chat_1"]


@pytest.mark.shared_journal
def test_the_last_node_and_the_last_step_settled_at_once_end_the_run_once(
    open_mesh: OpenMesh, clock: ManualClock
) -> None:
    # Two runtimes settle at the same moment; the loser's save conflicts, and it decides
    # again on the winner's facts: exactly one of them completes the run.
    first = open_mesh(workflows=[DigestFanout], action_registry=digest_registry())
    second = open_mesh(workflows=[DigestFanout], action_registry=digest_registry())
    run_id = origin_applied(first)
    first.schedule_dynamic_work(
        run_id, fanout(run_id, deliver("chat_1")), action_registry=digest_registry()
    )
    clock.advance(timedelta(minutes=1))
    claims = claim_attempts(
        first, "default", owner_id="w", limit=2, lease_for=timedelta(minutes=5), now=clock.now()
    )
    assert sorted(c.attempt.step for c in claims) == ["deliver_digest:chat_1", "summarize"]
    finished = [run_claimed(first, claim) for claim in claims]
    barrier = threading.Barrier(2)
    results: list[Settled] = []

    def settle_in(mesh: SquidMesh, item: Finished) -> None:
        barrier.wait()
        results.append(settle(mesh, "default", [item], now=clock.now())[0])

    threads = [
        threading.Thread(target=settle_in, args=(mesh, item))
        for mesh, item in zip((first, second), finished, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.committed and not r.refused for r in results] == [True, True]
    run = second.get_run(run_id)
    assert run.terminal_status == "completed"
    ended = [e for e in second.events.get(UUID(run_id)) if type(e).__name__ == "RunEnded"]
    assert len(ended) == 1
    assert run.context["delivered_chat_1"] is True and run.context["summarized"] is True
    assert not second.get_queue().attempts_of(run_id)
