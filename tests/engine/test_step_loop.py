"""`StepLoop`: one long-lived loop on its own thread; closing it cancels what still runs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import CancelledError

import pytest

from squidmesh_es.runtime._step_loop import StepLoop


def test_coroutines_share_one_loop_thread_that_starts_on_first_use() -> None:
    loop = StepLoop("test-steps")
    assert not loop.started

    async def where() -> tuple[str, asyncio.AbstractEventLoop]:
        return threading.current_thread().name, asyncio.get_running_loop()

    first, second = loop.run(where()), loop.run(where())

    assert loop.started and first == second and first[0] == "test-steps"
    loop.close()
    assert not loop.started


def test_cancel_stops_the_coroutine_and_cancels_its_future() -> None:
    loop = StepLoop()
    entered, seen = threading.Event(), threading.Event()

    async def waits() -> None:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.set()
            raise

    running = loop.submit(waits())
    assert entered.wait(10)
    running.cancel()

    with pytest.raises(CancelledError):
        running.future.result(10)
    assert seen.is_set()
    loop.close()


def test_close_cancels_what_still_runs_and_refuses_more() -> None:
    loop = StepLoop()
    running = loop.submit(asyncio.sleep(60))

    loop.close()

    assert running.future.cancelled()
    with pytest.raises(RuntimeError):
        loop.submit(asyncio.sleep(0))
    loop.close()  # idempotent


def test_an_exception_reaches_the_future() -> None:
    loop = StepLoop()

    async def fails() -> None:
        raise LookupError("missing")

    with pytest.raises(LookupError):
        loop.run(fails())
    loop.close()


def test_run_from_the_loops_own_thread_uses_a_helper_loop_instead_of_deadlocking() -> None:
    loop = StepLoop()

    async def inner() -> str:
        return "inner"

    async def outer() -> str:
        return loop.run(inner())  # a blocking call made on the loop's thread

    assert loop.run(outer()) == "inner"
    loop.close()
