"""The aggregates' cheap copies are independent: changing a copy never changes the original."""

from __future__ import annotations

import copy

from domain_builders import T0, claim, new_queue, new_run, runnable, schedule


def test_a_queue_copy_is_independent_of_the_original() -> None:
    queue = new_queue()
    key = schedule(queue)
    queue.collect_events()
    before = queue.stored_state()

    clone = copy.deepcopy(queue)
    claim(clone, key)
    schedule(clone, step="ship")

    assert queue.stored_state() == before
    assert clone.attempt(key).status == "claimed"  # type: ignore[union-attr]
    assert queue.attempt(key).status == "available"  # type: ignore[union-attr]
    assert [a.runnable_key for a in queue.claimable(T0)] == [key]
    assert clone.claimable(T0) != queue.claimable(T0)
    assert clone.version == queue.version + 3  # claim, then RunQueued and AttemptScheduled


def test_a_run_copy_is_independent_of_the_original() -> None:
    run = new_run()
    run.collect_events()
    before = copy.deepcopy(run.__dict__)

    clone = copy.deepcopy(run)
    clone.plan([runnable(clone, "charge")], now=T0)
    clone.receive_command("cancel_run", now=T0)

    assert run.__dict__ == before
    assert list(clone.planned) and not run.planned
    assert len(clone.command_history) == len(run.command_history) + 1
