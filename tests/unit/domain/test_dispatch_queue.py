from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from squidmesh_es.domain import Attempt, AttemptStatus, DispatchOrder, DispatchQueue, runnable_key
from squidmesh_es.domain._queue import _changed
from squidmesh_es.errors import (
    AttemptNotClaimable,
    ConflictingCompletion,
    ConflictingIntent,
    ExpiredClaim,
    InvalidArgument,
    ResultNotCompleted,
    RunTerminal,
    StaleClaim,
    UnknownAttempt,
)

from domain_builders import LEASE, T0, claim, new_queue, schedule, sha


def written(queue: DispatchQueue) -> list[str]:
    return [type(e).__name__ for e in queue.collect_events()]


# -- visibility and claiming ----------------------------------------------------------------


def test_attempt_visible_exactly_now_can_be_claimed() -> None:
    queue = new_queue()
    key = schedule(queue, visible_at=T0 + timedelta(seconds=5))

    claim(queue, key, at=T0 + timedelta(seconds=5))

    attempt = queue.attempt(key)
    assert attempt is not None and attempt.status is AttemptStatus.CLAIMED
    assert attempt.lease_until == T0 + timedelta(seconds=5) + LEASE


def test_attempt_cannot_be_claimed_before_visible_at_and_nothing_is_written() -> None:
    queue = new_queue()
    key = schedule(queue, visible_at=T0 + timedelta(seconds=5))
    queue.collect_events()
    version = queue.version

    with pytest.raises(AttemptNotClaimable) as caught:
        claim(queue, key, at=T0 + timedelta(seconds=4, microseconds=999_999))

    assert caught.value.reason == "attempt_not_visible"
    assert queue.pending_events == [] and queue.version == version


def test_active_claim_cannot_be_taken_over() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")

    with pytest.raises(AttemptNotClaimable) as caught:
        claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE - timedelta(0, 0, 1))

    assert caught.value.reason == "active_claim"
    assert queue.attempt(key).owner_id == "w1"  # type: ignore[union-attr]


def test_lease_ending_exactly_now_can_be_taken_over() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")

    claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE)

    attempt = queue.attempt(key)
    assert attempt is not None and attempt.owner_id == "w2" and attempt.claim_id == "c2"


def test_claimable_lists_visible_attempts_and_expired_claims_in_claim_order() -> None:
    queue = new_queue()
    run_a, run_b = sorted([uuid4(), uuid4()], key=str)
    late = schedule(queue, run_id=run_a, step="late", visible_at=T0 + timedelta(seconds=2))
    b_first = schedule(queue, run_id=run_b, step="s")
    a_first = schedule(queue, run_id=run_a, step="s")
    future = schedule(queue, run_id=run_a, step="future", visible_at=T0 + timedelta(hours=1))
    claim(queue, a_first, at=T0)  # expires at T0 + LEASE

    keys = [a.runnable_key for a in queue.claimable(T0 + LEASE)]

    assert keys == [a_first, b_first, late]
    assert future not in keys
    assert [a.runnable_key for a in queue.claimable(T0 + LEASE, limit=1)] == [a_first]


def test_claim_refuses_unknown_attempt_and_bad_arguments() -> None:
    queue = new_queue()
    key = schedule(queue)

    with pytest.raises(UnknownAttempt):
        claim(queue, "nope")
    with pytest.raises(InvalidArgument):
        queue.claim(
            key, claim_id="c", claim_token_hash="raw-token", owner_id="w", lease_for=LEASE, now=T0
        )
    with pytest.raises(InvalidArgument):
        queue.claim(
            key,
            claim_id="c",
            claim_token_hash=sha("t"),
            owner_id="w",
            lease_for=timedelta(0),
            now=T0,
        )


# -- heartbeat, completion and failure fences -------------------------------------------------


def test_heartbeat_extends_the_lease() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    until = queue.heartbeat(
        key,
        claim_id="c1",
        claim_token_hash=sha("t1"),
        lease_for=LEASE,
        now=T0 + timedelta(seconds=20),
    )

    assert until == T0 + timedelta(seconds=50)
    assert queue.attempt(key).lease_until == until  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("claim_id", "token", "error"),
    [("c1", "wrong", StaleClaim), ("other", "t1", StaleClaim)],
)
def test_heartbeat_with_wrong_claim_or_token_is_stale_and_writes_nothing(
    claim_id: str, token: str, error: type[Exception]
) -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)
    queue.collect_events()

    with pytest.raises(error):
        queue.heartbeat(
            key, claim_id=claim_id, claim_token_hash=sha(token), lease_for=LEASE, now=T0
        )

    assert queue.pending_events == []


def test_heartbeat_when_lease_ends_exactly_now_is_expired() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    with pytest.raises(ExpiredClaim):
        queue.heartbeat(
            key, claim_id="c1", claim_token_hash=sha("t1"), lease_for=LEASE, now=T0 + LEASE
        )


def test_old_owner_cannot_complete_after_takeover() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")
    claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE)
    queue.collect_events()

    with pytest.raises(StaleClaim):
        queue.complete(
            key, claim_id="c1", claim_token_hash=sha("t1"), result={"late": True}, now=T0 + LEASE
        )

    assert queue.pending_events == []
    assert queue.attempt(key).status is AttemptStatus.CLAIMED  # type: ignore[union-attr]


def test_completion_after_lease_end_is_refused_as_expired() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    with pytest.raises(ExpiredClaim):
        queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=T0 + LEASE)


def test_duplicate_identical_completion_is_idempotent_before_and_after_apply() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)
    assert queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 1}, now=T0)
    queue.collect_events()

    again = queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 1}, now=T0)
    queue.mark_applied(key, now=T0)
    queue.collect_events()
    after_apply = queue.complete(
        key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 1}, now=T0
    )

    assert again is False and after_apply is False
    assert queue.pending_events == []


def test_conflicting_completion_by_the_same_claim_is_refused() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)
    queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 1}, now=T0)

    with pytest.raises(ConflictingCompletion):
        queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 2}, now=T0)


def test_completion_by_another_claim_after_completion_is_stale() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)
    queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={"ok": 1}, now=T0)

    with pytest.raises(StaleClaim):
        queue.complete(key, claim_id="c9", claim_token_hash=sha("t9"), result={"ok": 1}, now=T0)


def test_failure_with_retry_schedules_the_next_attempt_visible_later() -> None:
    queue = new_queue()
    run_id = uuid4()
    key = schedule(queue, run_id=run_id)
    claim(queue, key)
    retry_key = runnable_key(run_id, "charge", 2)

    retry = queue.fail(
        key,
        claim_id="c1",
        claim_token_hash=sha("t1"),
        error={"message": "gateway down"},
        retry_runnable_key=retry_key,
        retry_visible_at=T0 + timedelta(seconds=10),
        now=T0,
    )

    assert retry is not None and retry.attempt_number == 2
    assert retry.status is AttemptStatus.RETRY_SCHEDULED and retry.retry_of == key
    assert retry.error == {"message": "gateway down"}
    assert queue.attempt(key) is None  # superseded by its retry
    assert queue.claimable(T0 + timedelta(seconds=9)) == []
    assert [a.runnable_key for a in queue.claimable(T0 + timedelta(seconds=10))] == [retry_key]


def test_failure_retry_needs_key_and_time_together() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    with pytest.raises(InvalidArgument):
        queue.fail(
            key, claim_id="c1", claim_token_hash=sha("t1"), error={}, retry_runnable_key="x", now=T0
        )


def test_failure_without_retry_keeps_the_attempt_failed_until_applied() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    queue.fail(key, claim_id="c1", claim_token_hash=sha("t1"), error={"message": "no"}, now=T0)

    assert queue.attempt(key).status is AttemptStatus.FAILED  # type: ignore[union-attr]
    assert queue.claimable(T0 + LEASE) == []
    assert queue.mark_applied(key, now=T0) is True
    assert queue.attempt(key) is None


# -- scheduling ---------------------------------------------------------------------------------


def test_scheduling_the_same_intent_again_writes_nothing() -> None:
    queue = new_queue()
    run_id = uuid4()
    key = schedule(queue, run_id=run_id)
    queue.collect_events()

    again = queue.schedule(
        run_id=run_id,
        runnable_key=key,
        step="charge",
        attempt_number=1,
        visible_at=T0,
        now=T0,
    )

    assert again is False and queue.pending_events == []


def test_scheduling_a_key_with_a_different_intent_is_refused() -> None:
    queue = new_queue()
    run_id = uuid4()
    key = schedule(queue, run_id=run_id)

    with pytest.raises(ConflictingIntent):
        queue.schedule(
            run_id=run_id,
            runnable_key=key,
            step="charge",
            attempt_number=1,
            visible_at=T0 + timedelta(seconds=1),
            now=T0,
        )


def test_first_schedule_of_a_run_marks_it_queued() -> None:
    queue = new_queue()
    run_id = uuid4()

    schedule(queue, run_id=run_id)

    assert written(queue) == ["Opened", "RunQueued", "AttemptScheduled"]
    assert str(run_id) in queue.queued_runs


def test_marking_applied_before_a_result_is_refused() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key)

    with pytest.raises(ResultNotCompleted):
        queue.mark_applied(key, now=T0)


def test_scheduled_metadata_is_redacted() -> None:
    queue = new_queue()
    run_id = uuid4()
    key = runnable_key(run_id, "s", 1)

    queue.schedule(
        run_id=run_id,
        runnable_key=key,
        step="s",
        attempt_number=1,
        visible_at=T0,
        now=T0,
        metadata={"Set-Cookie": "c", "note": "n"},
    )

    assert queue.attempt(key).metadata == {"Set-Cookie": "[REDACTED]", "note": "n"}  # type: ignore[union-attr]


def test_acting_on_an_attempt_superseded_by_its_retry_is_unknown() -> None:
    queue = new_queue()
    run_id = uuid4()
    key = schedule(queue, run_id=run_id)
    claim(queue, key)
    queue.fail(
        key,
        claim_id="c1",
        claim_token_hash=sha("t1"),
        error={},
        now=T0,
        retry_runnable_key=runnable_key(run_id, "charge", 2),
        retry_visible_at=T0,
    )

    with pytest.raises(UnknownAttempt):
        queue.mark_applied(key, now=T0)
    with pytest.raises(UnknownAttempt):
        queue.record_wakeup(key, now=T0)


def test_closing_a_run_needs_a_terminal_status() -> None:
    with pytest.raises(InvalidArgument):
        new_queue().close_run(uuid4(), status="paused", now=T0)


def test_wakeup_is_recorded_on_the_attempt() -> None:
    queue = new_queue()
    key = schedule(queue)

    queue.record_wakeup(key, now=T0)

    assert queue.attempt(key).wakeup_emitted is True  # type: ignore[union-attr]


# -- terminal runs ----------------------------------------------------------------------------


def test_closed_run_is_fenced_out_of_the_queue() -> None:
    queue = new_queue()
    run_id = uuid4()
    visible = schedule(queue, run_id=run_id, step="a")
    claimed = schedule(queue, run_id=run_id, step="b")
    other = schedule(queue, step="c")
    claim(queue, claimed)

    queue.close_run(run_id, status="cancelled", now=T0)

    assert [a.runnable_key for a in queue.claimable(T0 + LEASE)] == [other]
    assert queue.attempts_of(run_id) == []
    with pytest.raises(RunTerminal):
        claim(queue, visible, token="t3", claim_id="c3", at=T0 + LEASE)
    with pytest.raises(RunTerminal):
        queue.complete(claimed, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=T0)
    with pytest.raises(RunTerminal):
        queue.heartbeat(claimed, claim_id="c1", claim_token_hash=sha("t1"), lease_for=LEASE, now=T0)
    with pytest.raises(RunTerminal):
        queue.record_wakeup(visible, now=T0)
    with pytest.raises(RunTerminal):
        schedule(queue, run_id=run_id, step="d")
    assert queue.close_run(run_id, status="cancelled", now=T0) is False


def test_finished_work_leaves_the_state_and_is_counted() -> None:
    queue = new_queue()
    for n in range(50):
        key = schedule(queue, step=f"s{n}")
        claim(queue, key)
        queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=T0)
        queue.mark_applied(key, now=T0)

    assert len(queue) == 0 and queue.stored_state()["attempts"] == {}
    assert queue.counters["applied"] == 50 and queue.counters["completed"] == 50


def test_no_raw_claim_token_is_kept_in_state_or_events() -> None:
    queue = new_queue()
    key = schedule(queue)
    token = "super-secret-claim-token"
    queue.claim(
        key, claim_id="c1", claim_token_hash=sha(token), owner_id="w", lease_for=LEASE, now=T0
    )
    queue.complete(key, claim_id="c1", claim_token_hash=sha(token), result={}, now=T0)

    assert token not in repr(queue.stored_state())
    assert all(token not in repr(e) for e in queue.collect_events())


# -- claim order ------------------------------------------------------------------------------


def test_runs_under_way_are_claimed_before_the_first_steps_of_new_runs() -> None:
    queue = new_queue()
    backlog = [schedule(queue, step=f"entry{n}", fresh=True) for n in range(5)]
    successor = schedule(queue, step="next", visible_at=T0 + timedelta(seconds=1))

    order = [a.runnable_key for a in queue.claimable(T0 + timedelta(seconds=1))]

    assert order == [successor, *backlog]


def test_fifo_order_takes_attempts_by_visible_time_whatever_their_kind() -> None:
    queue = new_queue()
    backlog = [schedule(queue, step=f"entry{n}", fresh=True) for n in range(5)]
    successor = schedule(queue, step="next", visible_at=T0 + timedelta(seconds=1))

    order = queue.claimable(T0 + timedelta(seconds=1), order=DispatchOrder.FIFO)

    assert [a.runnable_key for a in order] == [*backlog, successor]


def test_expired_claims_come_before_waiting_work() -> None:
    queue = new_queue()
    waiting = schedule(queue, step="a")
    held = schedule(queue, step="b")
    claim(queue, held)

    assert [a.runnable_key for a in queue.claimable(T0)] == [waiting]
    assert [a.runnable_key for a in queue.claimable(T0 + LEASE)] == [held, waiting]


def test_next_visible_at_skips_work_that_is_no_longer_waiting() -> None:
    queue = new_queue()
    first = schedule(queue, step="a", visible_at=T0 + timedelta(seconds=5))
    schedule(queue, step="b", visible_at=T0 + timedelta(seconds=9), fresh=True)
    claim(queue, first, at=T0 + timedelta(seconds=5))

    assert queue.next_visible_at() == T0 + timedelta(seconds=9)


def test_a_claim_looks_at_the_front_of_the_queue_only() -> None:
    queue = new_queue()
    for n in range(20_000):
        schedule(queue, step=f"s{n}", visible_at=T0 + timedelta(milliseconds=n), fresh=True)
    claim(queue, runnable_key_of(queue, "s0"))
    looked_at: list[str] = []
    waits = queue._waits

    def counting(entry: Any) -> bool:
        looked_at.append(entry.key)
        return waits(entry)

    queue._waits = counting  # type: ignore[method-assign]
    first = next(queue.iter_claimable(T0 + timedelta(seconds=25)))

    assert first.step == "s1"
    assert len(looked_at) == 1  # the claimed s0 already left the index; nothing is scanned


def runnable_key_of(queue: DispatchQueue, step: str) -> str:
    return next(a.runnable_key for a in queue.claimable(T0 + timedelta(days=1)) if a.step == step)


def test_each_takeover_of_an_expired_claim_counts_one_lease_expiry() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")
    claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE)
    claim(queue, key, token="t3", claim_id="c3", owner="w3", at=T0 + 2 * LEASE)

    attempt = queue.attempt(key)
    assert attempt is not None and attempt.lease_expiries == 2


def test_a_heartbeat_keeps_the_count_and_a_retry_starts_from_zero() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")
    claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE)
    queue.heartbeat(key, claim_id="c2", claim_token_hash=sha("t2"), lease_for=LEASE, now=T0 + LEASE)
    retry = queue.fail(
        key,
        claim_id="c2",
        claim_token_hash=sha("t2"),
        error={"code": "x"},
        retry_runnable_key=key.replace(":1", ":2"),
        retry_visible_at=T0 + LEASE,
        now=T0 + LEASE,
    )

    assert retry is not None and retry.lease_expiries == 0


def test_the_lease_expiry_count_survives_a_snapshot_and_old_snapshots_count_zero() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="w1")
    claim(queue, key, token="t2", claim_id="c2", owner="w2", at=T0 + LEASE)
    state = queue.stored_state()
    old_state = {**state["attempts"][key]}
    del old_state["lease_expiries"]

    assert Attempt.from_state(state["attempts"][key]).lease_expiries == 1
    assert Attempt.from_state(old_state).lease_expiries == 0


def test_releasing_an_owner_ends_its_running_leases_now_and_leaves_others_alone() -> None:
    queue = new_queue()
    mine, theirs = schedule(queue), schedule(queue)
    claim(queue, mine, token="t1", claim_id="c1", owner="dead")
    claim(queue, theirs, token="t2", claim_id="c2", owner="alive")
    at = T0 + timedelta(seconds=5)

    released = queue.release_owner("dead", now=at)

    assert released == [mine]
    assert [a.runnable_key for a in queue.claimable(at)] == [mine]
    with pytest.raises(ExpiredClaim):
        queue.complete(mine, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=at)
    claim(queue, mine, token="t3", claim_id="c3", owner="heir", at=at)
    assert queue.attempt(mine).lease_expiries == 1  # type: ignore[union-attr]
    assert queue.release_owner("dead", now=at) == []  # nothing held: nothing written


def test_a_release_replayed_after_its_attempt_finished_changes_nothing() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="dead")
    queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=T0)

    queue.trigger_event(
        DispatchQueue.ClaimsReleased, owner_id="dead", runnable_keys=[key], timestamp=T0
    )

    attempt = queue.attempt(key)
    assert attempt is not None and attempt.status is AttemptStatus.COMPLETED


def test_a_returned_claim_waits_in_its_place_again_without_counting_a_lost_lease() -> None:
    queue = new_queue()
    first, second = schedule(queue), schedule(queue)
    claim(queue, first, token="t1", claim_id="c1", owner="ahead")
    claim(queue, second, token="t2", claim_id="c2", owner="ahead")
    at = T0 + timedelta(seconds=1)

    returned = queue.return_claims("ahead", [second, "unknown:key:1"], now=at)

    assert returned == [second] and written(queue)[-1] == "ClaimsReturned"
    attempt = queue.attempt(second)
    assert attempt is not None and attempt.status is AttemptStatus.AVAILABLE
    assert (attempt.claim_id, attempt.owner_id, attempt.lease_until) == (None, None, None)
    assert [a.runnable_key for a in queue.claimable(at)] == [second]
    with pytest.raises(StaleClaim):
        queue.heartbeat(second, claim_id="c2", claim_token_hash=sha("t2"), lease_for=LEASE, now=at)
    with pytest.raises(StaleClaim):
        queue.complete(second, claim_id="c2", claim_token_hash=sha("t2"), result={}, now=at)
    claim(queue, second, token="t3", claim_id="c3", owner="free", at=at)
    assert queue.attempt(second).lease_expiries == 0  # type: ignore[union-attr]
    assert queue.attempt(first).owner_id == "ahead"  # type: ignore[union-attr]


def test_only_the_owner_returns_its_claims_and_nothing_held_writes_nothing() -> None:
    queue = new_queue()
    key = schedule(queue)
    claim(queue, key, token="t1", claim_id="c1", owner="ahead")
    queue.collect_events()

    assert queue.return_claims("someone-else", [key], now=T0) == []
    assert queue.pending_events == []
    queue.complete(key, claim_id="c1", claim_token_hash=sha("t1"), result={}, now=T0)
    assert queue.return_claims("ahead", [key], now=T0) == []
    queue.trigger_event(  # replayed after the attempt finished: changes nothing
        DispatchQueue.ClaimsReturned, owner_id="ahead", runnable_keys=[key], timestamp=T0
    )
    assert queue.attempt(key).status is AttemptStatus.COMPLETED  # type: ignore[union-attr]


def test_a_changed_attempt_record_is_what_dataclasses_replace_builds() -> None:
    # The claim and completion path changes records without dataclasses.replace.
    attempt = Attempt(
        runnable_key="r:a:1",
        run_id="r",
        step="a",
        attempt_number=1,
        idempotency_key="r:a:1",
        visible_at=T0,
        status=AttemptStatus.AVAILABLE,
        seq=3,
        fresh=True,
    )
    changes: dict[str, Any] = {"status": AttemptStatus.CLAIMED, "lease_until": T0 + LEASE}

    changed = _changed(attempt, changes)

    assert changed == replace(attempt, **changes)
    assert (changed.seq, changed.fresh, changed.lease_expiries) == (3, True, 0)
    assert attempt.status is AttemptStatus.AVAILABLE
    with pytest.raises(TypeError):
        _changed(attempt, {"colour": "blue"})
