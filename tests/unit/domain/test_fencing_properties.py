"""Property test: random worker interleavings never break the claim fence.

A small reference model says which operations must succeed; the aggregate must agree, write
nothing when it refuses, and rebuild to the same state, with no anomalies, from its events.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate
from hypothesis import given, settings
from hypothesis import strategies as st

from squidmesh_es.domain import DispatchQueue
from squidmesh_es.errors import SquidMeshError

from domain_builders import T0, new_queue, schedule, sha

LEASE = timedelta(seconds=10)
KEYS = ("a", "b")
WORKERS = ("w0", "w1", "w2")

operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 12)),
        st.tuples(st.just("claim"), st.sampled_from(WORKERS), st.sampled_from(KEYS)),
        st.tuples(st.just("heartbeat"), st.sampled_from(WORKERS), st.sampled_from(KEYS)),
        st.tuples(
            st.just("complete"), st.sampled_from(WORKERS), st.sampled_from(KEYS), st.integers(0, 1)
        ),
        st.tuples(st.just("fail"), st.sampled_from(WORKERS), st.sampled_from(KEYS)),
    ),
    max_size=40,
)


@dataclass
class ModelAttempt:
    visible_at: datetime
    holder: tuple[str, str] | None = None  # (worker, claim_id)
    lease_until: datetime | None = None
    done: str | None = None  # "completed" / "failed"
    result: int | None = None


def rebuild(events: list[Any]) -> DispatchQueue:
    queue: Any = None
    for event in events:
        queue = event.mutate(queue)
    return queue


def state_of(queue: DispatchQueue) -> dict[str, Any]:
    return {"version": queue.version, "state": queue.stored_state()}


def claimable_by_scan(queue: DispatchQueue, at: Any) -> set[str]:
    """What the claim rule allows, found the slow way: the index must agree with it."""
    keys = queue.stored_state()["attempts"]
    return {key for key in keys if queue.claim_rule(key, at) is None}


@settings(max_examples=300, deadline=None)
@given(operations)
def test_interleaved_workers_never_break_the_fence(ops: list[tuple[Any, ...]]) -> None:
    queue = new_queue()
    keys = {
        name: schedule(queue, step=name, visible_at=T0 + timedelta(seconds=i * 5))
        for i, name in enumerate(KEYS)
    }
    events: list[Aggregate.Event] = list(queue.collect_events())
    model = {
        name: ModelAttempt(visible_at=T0 + timedelta(seconds=i * 5)) for i, name in enumerate(KEYS)
    }
    held: dict[tuple[str, str], tuple[str, str]] = {}  # (worker, key) -> (claim_id, token)
    now = T0
    serial = 0

    for op in ops:
        if op[0] == "advance":
            now += timedelta(seconds=op[1])
            continue
        worker, name = op[1], op[2]
        key, m = keys[name], model[name]
        mine = held.get((worker, name))
        expected_ok: bool
        before = copy.deepcopy(state_of(queue))
        try:
            if op[0] == "claim":
                serial += 1
                claim_id, token = f"c{serial}", f"t{serial}"
                expected_ok = (
                    m.done is None
                    and m.visible_at <= now
                    and (m.lease_until is None or m.lease_until <= now)
                )
                queue.claim(
                    key,
                    claim_id=claim_id,
                    claim_token_hash=sha(token),
                    owner_id=worker,
                    lease_for=LEASE,
                    now=now,
                )
                held[(worker, name)] = (claim_id, token)
                m.holder, m.lease_until = (worker, claim_id), now + LEASE
            else:
                claim_id, token = mine or ("none", "none")
                current = m.holder == (worker, claim_id) and mine is not None
                live = (
                    current and m.done is None and m.lease_until is not None and now < m.lease_until
                )
                if op[0] == "heartbeat":
                    expected_ok = live
                    queue.heartbeat(
                        key,
                        claim_id=claim_id,
                        claim_token_hash=sha(token),
                        lease_for=LEASE,
                        now=now,
                    )
                    m.lease_until = now + LEASE
                elif op[0] == "complete":
                    duplicate = current and m.done == "completed" and m.result == op[3]
                    expected_ok = live or duplicate
                    queue.complete(
                        key,
                        claim_id=claim_id,
                        claim_token_hash=sha(token),
                        result={"r": op[3]},
                        now=now,
                    )
                    if not duplicate:
                        m.done, m.result = "completed", op[3]
                else:
                    expected_ok = live
                    queue.fail(
                        key, claim_id=claim_id, claim_token_hash=sha(token), error={"e": 1}, now=now
                    )
                    m.done = "failed"
        except SquidMeshError:
            assert not expected_ok, f"{op} refused at {now - T0} but the model allows it"
            assert queue.pending_events == []
            assert state_of(queue) == before
            continue
        assert expected_ok, f"{op} accepted at {now - T0} but the model refuses it"
        events.extend(queue.collect_events())
        for at in (now, now + LEASE):
            found = [a.runnable_key for a in queue.claimable(at)]
            assert len(found) == len(set(found))
            assert set(found) == claimable_by_scan(queue, at)

    rebuilt = rebuild(events)
    assert state_of(rebuilt) == state_of(queue)
    assert rebuilt.anomalies == []
